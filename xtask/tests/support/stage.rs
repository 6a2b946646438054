//! A stage for cluster tests: fake cluster tools that record their argv
//! and, as the real ones do, add and remove their cluster's context in a
//! kubeconfig of the test's own, whose contexts lead to the API fake
//! served over HTTP; the real `kubectl`, its argv recorded.

#![allow(dead_code)]

use std::path::PathBuf;

use kube_fake_api::Setup;

use crate::support::{self, Fakes, Result};

impl std::ops::Deref for Stage {
    type Target = Fakes;
    fn deref(&self) -> &Fakes {
        &self.f
    }
}

/// The kubectl the tests run: the real one, its argv recorded.
pub const KUBECTL: (&str, &str) = ("kubectl", r#"exec "$REAL_KUBECTL" "$@""#);

/// How the fake cluster tools add and remove a context, as the real ones
/// write the kubeconfig.
pub const CONTEXTS: &str = r#"add_context() { "$REAL_KUBECTL" config set-context "$1" --cluster fake --user fake >/dev/null && "$REAL_KUBECTL" config use-context "$1" >/dev/null; }
remove_context() {
  "$REAL_KUBECTL" config delete-context "$1" >/dev/null 2>&1
  [ "$("$REAL_KUBECTL" config current-context 2>/dev/null)" = "$1" ] && "$REAL_KUBECTL" config unset current-context >/dev/null
  true
}
arg() { echo " $* " | sed -n "s/.* $1 \([^ ]*\) .*/\1/p" | head -n 1; }"#;

/// The fake tools, and a kubeconfig whose cluster is the API fake served
/// here (or an address where nothing listens: [`Stage::unserved`]).
pub struct Stage {
    pub f: Fakes,
    pub kubeconfig: PathBuf,
    pub server: String,
    _rt: Option<tokio::runtime::Runtime>,
}

impl Stage {
    pub fn new(fakes: &[(&str, &str)]) -> Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let (_fake, addr) = kube_fake_api::run_on(&rt, Setup::default())?;
        Self::with(fakes, format!("http://{addr}"), Some(rt))
    }

    /// No cluster behind the kubeconfig: connections are refused.
    pub fn unserved(fakes: &[(&str, &str)]) -> Result<Self> {
        let port = support::free_port()?;
        Self::with(fakes, format!("http://127.0.0.1:{port}"), None)
    }

    pub fn with(
        fakes: &[(&str, &str)],
        server: String,
        rt: Option<tokio::runtime::Runtime>,
    ) -> Result<Self> {
        let tools: Vec<(&str, String)> = fakes
            .iter()
            .map(|(name, body)| (*name, format!("{CONTEXTS}\n{body}")))
            .chain([(KUBECTL.0, KUBECTL.1.to_string())])
            .collect();
        let tools: Vec<(&str, &str)> = tools.iter().map(|(n, b)| (*n, b.as_str())).collect();
        let f = Fakes::new(&tools)?;
        let kubeconfig = f.dir.path().join("kubeconfig");
        let stage = Self {
            f,
            kubeconfig,
            server,
            _rt: rt,
        };
        stage.contexts(&[], None)?;
        Ok(stage)
    }

    /// Writes the kubeconfig: these contexts, all leading to the stage's
    /// cluster, `current` selected.
    pub fn contexts(&self, names: &[&str], current: Option<&str>) -> Result {
        let mut names: Vec<&str> = names.to_vec();
        names.extend(current.filter(|c| !names.contains(c)));
        let contexts: Vec<String> = names
            .iter()
            .map(|n| format!("{{name: '{n}', context: {{cluster: fake, user: fake}}}}"))
            .collect();
        std::fs::write(
            &self.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: '{}'\n\
                 clusters: [{{name: fake, cluster: {{server: '{}'}}}}]\n\
                 users: [{{name: fake, user: {{}}}}]\ncontexts: [{}]\n",
                current.unwrap_or_default(),
                self.server,
                contexts.join(", ")
            ),
        )?;
        Ok(())
    }

    /// The current context the kubeconfig names now.
    pub fn current_context(&self) -> Result<String> {
        let config: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&self.kubeconfig)?)?;
        Ok(config["current-context"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The xtask with the tools; `FAKE_CONTEXTS` (space-separated) and
    /// `FAKE_CONTEXT` (the current one) in `env` rewrite the kubeconfig
    /// first, else it stays as the last command left it.
    pub fn xtask(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(std::process::Output, Vec<String>)> {
        let var = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        if var("FAKE_CONTEXT").is_some() || var("FAKE_CONTEXTS").is_some() {
            let names: Vec<&str> = var("FAKE_CONTEXTS")
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            self.contexts(&names, var("FAKE_CONTEXT"))?;
        }
        let real = which::which("kubectl")
            .map_err(|e| format!("kubectl is needed for these tests ({e}): install it"))?;
        let mut all: Vec<(&str, &str)> = env
            .iter()
            .copied()
            .filter(|(k, _)| !matches!(*k, "FAKE_CONTEXT" | "FAKE_CONTEXTS"))
            .collect();
        let (config, real) = (
            self.kubeconfig.display().to_string(),
            real.display().to_string(),
        );
        all.push(("KUBECONFIG", &config));
        all.push(("REAL_KUBECTL", &real));
        self.f.xtask(args, &all)
    }
}

pub fn acted(log: &[String]) -> Vec<&str> {
    // Read-only queries aside, what was done.
    log.iter()
        .map(String::as_str)
        .filter(|l| {
            !l.contains("get --raw /readyz")
                && !l.starts_with("kubectl config")
                && !l.contains("get-value")
                && !l.starts_with("gcloud services")
                && l != &"kind get clusters"
                && !l.starts_with("minikube profile list")
        })
        .collect()
}
