//! k3d: k3s in containers of the local engine. `k3d cluster create` (only
//! when missing); images by `k3d image import` from their archives;
//! services and the ingress reached through background port-forwards, as
//! on kind; its kube context is `k3d-<cluster>`. Everything k3d is lives
//! in this file: its settings table, tool, names, publisher and help.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use xshell::cmd;

use super::cluster::Cluster;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::names;
use crate::ground::runner::Probe;
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::image::Image;
use crate::publish::publisher::Publisher;
use crate::targets::engine::Engine;

/// `[k3d]`: the cluster `cluster up` creates (`k3d-<cluster>` its context)
/// and its agent nodes beside the one server.
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub cluster: String,
    /// Agent (worker) nodes `k3d cluster create --agents` adds, at most
    /// `MAX_AGENTS`.
    pub agents: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster: "kube-mlops".into(),
            agents: 0,
        }
    }
}

/// The longest cluster name k3d takes: its `DefaultClusterNameMaxLength`
/// (pkg/types), which keeps `k3d-<cluster>-server-0` and the like within
/// the 64 characters of a container's name.
const MAX_NAME: usize = 32;

/// The most agents `[k3d] agents` may ask for: each is a container of this
/// machine's engine running a kubelet, so more is a typo, not a cluster.
const MAX_AGENTS: u32 = 16;

impl Settings {
    /// # Errors
    /// A cluster name that is not a DNS-1123 label (k3d names its node
    /// containers, their hostnames, and the context after it) or is longer
    /// than k3d takes; more agents than `MAX_AGENTS`.
    fn check(self) -> Result<Self> {
        let length = self.cluster.chars().count();
        if length > MAX_NAME {
            bail!(
                "k3d.cluster = {:?} has {length} characters; k3d takes at most {MAX_NAME} \
                 (it names the node containers after it): choose a shorter name",
                self.cluster
            );
        }
        names::dns1123_label(&self.cluster)
            .map_err(|why| anyhow::anyhow!("k3d.cluster = {:?} {why}", self.cluster))?;
        if self.agents > MAX_AGENTS {
            bail!(
                "k3d.agents = {} is more than {MAX_AGENTS}: each agent is a container on this \
                 machine; ask for fewer",
                self.agents
            );
        }
        Ok(self)
    }
}

/// `--target k3d`.
pub const KIND: super::cluster::ClusterKind = super::cluster::ClusterKind {
    name: TargetName::named("k3d"),
    about: "A local k3d cluster (k3s in containers)",
    loads_images: true,
    tools: &[crate::ground::tools::Tool {
        name: "k3d",
        version_args: &["version"],
        version_exits_0: true,
        also_for: "",
        debian: "the k3d release binary from github.com/k3d-io/k3d/releases (or its install.sh)",
        macos: "brew install k3d",
    }],
    make: |config| {
        Ok(Box::new(K3d {
            settings: super::cluster::table::<Settings>(config, KIND.name)?.check()?,
            namespace: config.kubernetes.namespace.clone(),
            ingress_local_port: config.seldon.local_port,
        }))
    },
};

/// The k3d cluster `[k3d] cluster`, its services in `namespace`.
pub struct K3d {
    pub settings: Settings,
    pub namespace: String,
    /// `[seldon] local_port`: where this machine reaches the ingress.
    pub ingress_local_port: u16,
}

/// A cluster as `k3d cluster list -o json` prints it (k3d's
/// `PrintClusters`: `name`, and how many of its server and agent nodes
/// there are and run).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    #[serde(default)]
    servers_count: u32,
    #[serde(default)]
    servers_running: u32,
    #[serde(default)]
    agents_count: u32,
    #[serde(default)]
    agents_running: u32,
}

/// What `cluster up` finds of its cluster.
#[derive(Debug, PartialEq)]
enum State {
    Missing,
    /// Some of its nodes are stopped (`k3d cluster stop`, a reboot).
    Stopped,
    Running,
}

/// `cluster`'s state in the output of `k3d cluster list -o json`.
///
/// # Errors
/// Output that is not k3d's list of clusters.
fn state_of(json: &str, cluster: &str) -> Result<State> {
    let listed: Vec<Listed> = serde_json::from_str(json).with_context(|| {
        format!(
            "`k3d cluster list -o json` printed no list of clusters: {}",
            json.trim().chars().take(200).collect::<String>()
        )
    })?;
    Ok(match listed.iter().find(|c| c.name == cluster) {
        None => State::Missing,
        Some(c) if c.servers_running < c.servers_count || c.agents_running < c.agents_count => {
            State::Stopped
        }
        Some(_) => State::Running,
    })
}

impl Cluster for K3d {
    fn name(&self) -> TargetName {
        KIND.name
    }

    fn context(&self, _cx: &Ctx) -> Result<String> {
        Ok(format!("k3d-{}", self.settings.cluster))
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "docker", "k3d", "kubectl"]
    }

    fn up(&self, cx: &Ctx) -> Result<()> {
        let cluster = &self.settings.cluster;
        let listed = cx.runner.probe(
            cmd!(cx.sh, "k3d cluster list -o json"),
            "listing k3d clusters",
            Duration::from_secs(30),
        )?;
        let state = if listed.success {
            state_of(&listed.stdout, cluster)?
        } else {
            // Under --dry-run a blocker, and the plan goes on as for a
            // missing cluster; otherwise the error.
            cx.runner.precondition(listed.failure())?;
            State::Missing
        };
        match state {
            State::Running => eprintln!("==> k3d cluster {cluster} exists already"),
            State::Stopped => {
                cx.runner.run(
                    cmd!(cx.sh, "k3d cluster start {cluster} --wait"),
                    "starting the stopped k3d cluster",
                )?;
            }
            State::Missing => {
                let agents = self.settings.agents.to_string();
                cx.runner.run(
                    cmd!(
                        cx.sh,
                        "k3d cluster create {cluster} --agents {agents} --wait"
                    ),
                    "creating a k3d cluster",
                )?;
            }
        }
        Ok(())
    }

    fn down(&self, cx: &Ctx, _confirmed: bool) -> Result<()> {
        let cluster = &self.settings.cluster;
        cx.runner.run(
            cmd!(cx.sh, "k3d cluster delete {cluster}"),
            "deleting a k3d cluster",
        )?;
        Ok(())
    }

    fn status(&self, cx: &Ctx) -> Result<Probe> {
        cx.runner.probe(
            cmd!(cx.sh, "k3d cluster list"),
            "cluster status",
            Duration::from_secs(60),
        )
    }

    /// k3d's nodes are containers of the local engine: its platform.
    fn planned_platform(&self, cx: &Ctx) -> Result<Option<Platform>> {
        crate::targets::docker::engine_platform(cx)
    }

    fn publisher(&self, _cx: &Ctx) -> Box<dyn Publisher> {
        Box::new(Import {
            cluster: self.settings.cluster.clone(),
        })
    }

    fn service_url(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &Path,
        spec: &ServiceSpec,
    ) -> Result<String> {
        engine.forward(
            cx,
            state,
            &spec.name,
            &self.namespace,
            &spec.name,
            None,
            spec.settings.port,
        )
    }

    fn ingress_local_port(&self) -> Option<u16> {
        Some(self.ingress_local_port)
    }
}

/// `k3d image import`: an image archive into every node of the k3d
/// cluster `cluster`.
pub struct Import {
    pub cluster: String,
}

impl Publisher for Import {
    fn destination(&self, _cx: &Ctx) -> String {
        format!("k3d cluster {}", self.cluster)
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        cx.runner.step(format!(
            "import {} into {}",
            image.reference,
            self.destination(cx)
        ));
        let (cluster, archive) = (&self.cluster, &image.archive);
        cx.runner.run(
            cmd!(cx.sh, "k3d image import {archive} --cluster {cluster}"),
            "importing images into k3d",
        )?;
        Ok(image.reference.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_list_is_read_by_name_and_running_nodes() -> anyhow::Result<()> {
        let json = r#"[{"name":"kube-mlops","serversCount":1,"serversRunning":1,
            "agentsCount":2,"agentsRunning":2},
            {"name":"dev","serversCount":1,"serversRunning":0,"agentsCount":0,"agentsRunning":0},
            {"name":"half","serversCount":1,"serversRunning":1,"agentsCount":2,"agentsRunning":1}]"#;
        assert_eq!(state_of(json, "kube-mlops")?, State::Running);
        assert_eq!(state_of(json, "dev")?, State::Stopped);
        assert_eq!(state_of(json, "half")?, State::Stopped);
        assert_eq!(state_of(json, "other")?, State::Missing);
        assert_eq!(state_of("[]", "dev")?, State::Missing);
        let e = state_of("FATA[0000] runtime failed", "dev").expect_err("read");
        assert!(
            format!("{e:#}").contains("printed no list of clusters: FATA"),
            "{e:#}"
        );
        Ok(())
    }

    #[test]
    fn the_committed_settings_spell_out_the_defaults() -> anyhow::Result<()> {
        super::super::cluster::spelled_out::<Settings>(KIND.name)
    }

    #[test]
    fn its_table_is_checked_and_defaults_where_absent() -> anyhow::Result<()> {
        let config = crate::ground::settings::parse("")?;
        let s = super::super::cluster::table::<Settings>(&config, KIND.name)?;
        assert_eq!(s, Settings::default());
        let config = crate::ground::settings::parse("[k3d]\ncluster = \"Dev_1\"\n")?;
        let e = super::super::cluster::table::<Settings>(&config, KIND.name)?
            .check()
            .expect_err("taken");
        assert!(e.to_string().starts_with("k3d.cluster = \"Dev_1\""), "{e}");
        for (table, says) in [
            (
                format!("cluster = \"{}\"", "a".repeat(33)),
                "has 33 characters",
            ),
            ("agents = 17".to_string(), "k3d.agents = 17 is more than 16"),
        ] {
            let config = crate::ground::settings::parse(&format!("[k3d]\n{table}\n"))?;
            let e = super::super::cluster::table::<Settings>(&config, KIND.name)?
                .check()
                .expect_err("taken");
            assert!(e.to_string().contains(says), "{e}");
        }
        let config = crate::ground::settings::parse(&format!(
            "[k3d]\ncluster = \"{}\"\nagents = 16\n",
            "a".repeat(32)
        ))?;
        super::super::cluster::table::<Settings>(&config, KIND.name)?.check()?;
        Ok(())
    }
}
