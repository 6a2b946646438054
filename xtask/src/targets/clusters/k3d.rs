//! k3d: k3s in containers of the local engine. `k3d cluster create` (only
//! when missing); images by `k3d image import` from their archives;
//! services and the ingress reached through background port-forwards, as
//! on kind; its kube context is `k3d-<cluster>`. Everything k3d is lives
//! in this file: its settings table, tool, names, publisher and help.

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
use crate::image::Image;
use crate::publish::publisher::Publisher;
use crate::targets::engine::Engine;

/// `[k3d]`: the cluster `cluster up` creates (`k3d-<cluster>` its context)
/// and its agent nodes beside the one server.
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub cluster: String,
    /// Agent (worker) nodes `k3d cluster create --agents` adds.
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

impl Settings {
    /// # Errors
    /// A cluster name that is not a DNS-1123 label (k3d names its node
    /// containers, their hostnames, and the context after it).
    fn check(self) -> Result<Self> {
        names::dns1123_label(&self.cluster)
            .map_err(|why| anyhow::anyhow!("k3d.cluster = {:?} {why}", self.cluster))?;
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

/// The names in `k3d cluster list -o json` (an array of clusters, each
/// with its `name`).
fn cluster_names(json: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
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
        let exists = cx
            .runner
            .probe(
                cmd!(cx.sh, "k3d cluster list -o json"),
                "listing k3d clusters",
                Duration::from_secs(30),
            )
            .ok()
            .is_some_and(|p| cluster_names(&p.stdout).contains(cluster));
        if exists {
            eprintln!("==> k3d cluster {cluster} exists already");
        } else {
            let agents = self.settings.agents.to_string();
            cx.runner.run(
                cmd!(
                    cx.sh,
                    "k3d cluster create {cluster} --agents {agents} --wait"
                ),
                "creating a k3d cluster",
            )?;
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
    fn the_cluster_list_is_read_by_name() {
        let json = r#"[{"name":"kube-mlops","serversRunning":1},{"name":"dev"}]"#;
        assert_eq!(cluster_names(json), ["kube-mlops", "dev"]);
        assert!(cluster_names("not json").is_empty());
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
        Ok(())
    }
}
