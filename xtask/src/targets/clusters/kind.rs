//! kind: `kind create cluster` (only when missing); images by `kind load
//! image-archive`; services and the ingress reached through background
//! port-forwards (kind has no load balancer).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use xshell::cmd;

use super::cluster::Cluster;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::names;
use crate::ground::runner::Probe;
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::publish::kind::Kind as Load;
use crate::publish::publisher::Publisher;
use crate::targets::engine::Engine;

/// `[kind]`: the cluster `cluster up` creates (`kind-<cluster>` its context).
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub cluster: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster: "kube-mlops".into(),
        }
    }
}

impl Settings {
    /// # Errors
    /// A cluster name that is not a DNS-1123 label.
    fn check(self) -> Result<Self> {
        names::dns1123_label(&self.cluster)
            .map_err(|why| anyhow::anyhow!("kind.cluster = {:?} {why}", self.cluster))?;
        Ok(self)
    }
}

/// `--target kind`.
pub const KIND: super::cluster::ClusterKind = super::cluster::ClusterKind {
    name: TargetName::named("kind"),
    about: "A local kind cluster",
    loads_images: true,
    tools: &[crate::ground::tools::Tool {
        name: "kind",
        version_args: &["version"],
        version_exits_0: true,
        also_for: "",
        debian: "go install sigs.k8s.io/kind@latest (or the release binary)",
        macos: "brew install kind",
    }],
    make: |config| {
        Ok(Box::new(Kind {
            settings: super::cluster::table::<Settings>(config, KIND.name)?.check()?,
            namespace: config.kubernetes.namespace.clone(),
            ingress_local_port: config.seldon.local_port,
        }))
    },
};

/// The kind cluster `[kind] cluster`, its services in `namespace`.
pub struct Kind {
    pub settings: Settings,
    pub namespace: String,
    /// `[seldon] local_port`: where this machine reaches the ingress.
    pub ingress_local_port: u16,
}

impl Cluster for Kind {
    fn name(&self) -> TargetName {
        KIND.name
    }

    fn context(&self, _cx: &Ctx) -> Result<String> {
        Ok(format!("kind-{}", self.settings.cluster))
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "docker", "kind", "kubectl"]
    }

    fn up(&self, cx: &Ctx) -> Result<()> {
        let cluster = &self.settings.cluster;
        let listed = cx.runner.probe(
            cmd!(cx.sh, "kind get clusters"),
            "listing kind clusters",
            Duration::from_secs(30),
        )?;
        if !listed.success {
            // A list that fails is kind's error, not a missing cluster
            // (under --dry-run: a blocker, and the create is planned).
            cx.runner.precondition(listed.failure())?;
        }
        let exists = listed.stdout.lines().any(|l| l.trim() == cluster);
        if exists {
            eprintln!("==> kind cluster {cluster} exists already");
        } else {
            cx.runner.run(
                cmd!(cx.sh, "kind create cluster --name {cluster}"),
                "creating a kind cluster",
            )?;
        }
        Ok(())
    }

    fn down(&self, cx: &Ctx, _confirmed: bool) -> Result<()> {
        let cluster = &self.settings.cluster;
        cx.runner.run(
            cmd!(cx.sh, "kind delete cluster --name {cluster}"),
            "deleting a kind cluster",
        )?;
        Ok(())
    }

    fn status(&self, cx: &Ctx) -> Result<Probe> {
        cx.runner.probe(
            cmd!(cx.sh, "kind get clusters"),
            "cluster status",
            Duration::from_secs(60),
        )
    }

    /// kind's nodes are containers of the local engine: its platform.
    fn planned_platform(&self, cx: &Ctx) -> Result<Option<Platform>> {
        crate::targets::docker::engine_platform(cx)
    }

    fn publisher(&self, _cx: &Ctx) -> Box<dyn Publisher> {
        Box::new(Load {
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
        let namespace = &self.namespace;
        engine.forward(
            cx,
            state,
            &spec.name,
            namespace,
            &spec.name,
            None,
            spec.settings.port,
        )
    }

    fn ingress_local_port(&self) -> Option<u16> {
        Some(self.ingress_local_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_settings_spell_out_the_defaults() -> anyhow::Result<()> {
        super::super::cluster::spelled_out::<Settings>(KIND.name)
    }
}
