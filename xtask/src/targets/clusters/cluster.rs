//! What a cluster kind is to kube-mlops: everything that differs between
//! minikube, kind and GKE, so that the Kubernetes target, the cluster and
//! context commands and Seldon work over any of them.

use anyhow::Result;

use crate::ground::context::Ctx;
use crate::ground::runner::Probe;
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::publish::publisher::Publisher;
use crate::targets::engine::Engine;

/// `[name]` of `config` as `T`, with `T`'s defaults where the table or a
/// key is absent: a cluster kind's settings table.
///
/// # Errors
/// Not a table, a key `T` does not take, a value of another type.
pub fn table<T: serde::de::DeserializeOwned + Default>(
    config: &crate::ground::settings::Config,
    name: TargetName,
) -> anyhow::Result<T> {
    match config.clusters.get(name.as_str()) {
        None => Ok(T::default()),
        Some(value) if !value.is_table() => {
            let t = value.type_str();
            let a = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            anyhow::bail!(
                "[{name}] is {a} {t}, not a table: write its settings under a `[{name}]` \
                 header, one `key = value` a line"
            )
        }
        // toml's message, on one line ("… in `agents`" ends it).
        Some(value) => T::deserialize(value.clone()).map_err(|e| {
            anyhow::anyhow!(
                "[{name}]: {}",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }),
    }
}

/// Checks that the committed `xtask.toml` has `[name]`, with `T`'s
/// defaults spelled out: each kind's test.
#[cfg(test)]
pub fn spelled_out<T>(name: TargetName) -> anyhow::Result<()>
where
    T: serde::de::DeserializeOwned + Default + PartialEq + std::fmt::Debug,
{
    let config = crate::ground::settings::parse(include_str!("../../../../xtask.toml"))?;
    anyhow::ensure!(
        config.clusters.contains_key(name.as_str()),
        "xtask.toml has no [{name}]"
    );
    assert_eq!(table::<T>(&config, name)?, T::default());
    Ok(())
}

/// A cluster kind: the target it is, what it is (for `--help`), and how
/// the settings make one (`clusters::KINDS` lists them).
pub struct ClusterKind {
    pub name: TargetName,
    pub about: &'static str,
    /// Whether `image load --into <name>` loads into its node (a local
    /// cluster: its images need no registry).
    pub loads_images: bool,
    /// The tools only this kind drives (`minikube`, `kind`, `gcloud`):
    /// how `doctor` asks their versions and how to install them.
    pub tools: &'static [crate::ground::tools::Tool],
    /// The cluster, holding its settings: its own table (`clusters::table`)
    /// and what it shares with the others.
    ///
    /// # Errors
    /// Its table is not what it takes.
    pub make: fn(&crate::ground::settings::Config) -> Result<Box<dyn Cluster>>,
}

pub trait Cluster {
    /// The target this cluster kind is (`--target`, the overlay's directory).
    fn name(&self) -> TargetName;

    /// The kube context its tool writes into the kubeconfig.
    fn context(&self, cx: &Ctx) -> Result<String>;

    /// Tools `--target <this>` cannot work without.
    fn tools(&self) -> &'static [&'static str];

    /// Creates or starts it (the caller then waits for its API server).
    fn up(&self, cx: &Ctx) -> Result<()>;

    /// Deletes it; `confirmed` when the user said `--yes`.
    fn down(&self, cx: &Ctx, confirmed: bool) -> Result<()>;

    /// Its tool's own view of it (printed as is); success when it exists.
    fn status(&self, cx: &Ctx) -> Result<Probe>;

    /// How built images reach it.
    fn publisher(&self, cx: &Ctx) -> Box<dyn Publisher>;

    /// A deployed service's base URL as this machine reaches it; `state`
    /// holds background port-forwards.
    fn service_url(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &std::path::Path,
        spec: &ServiceSpec,
    ) -> Result<String>;

    /// The port on this machine the ingress is forwarded to, for a
    /// cluster reached through a port-forward (kind, minikube); None for
    /// one whose ingress has an address of its own (GKE's LoadBalancer,
    /// which overrides `ingress`).
    fn ingress_local_port(&self) -> Option<u16> {
        None
    }

    /// Where the ingress `namespace/service` (listening on `port`) answers
    /// this machine: host and port. By default a port-forward to
    /// `ingress_local_port` (`engine::forward_ingress`).
    ///
    /// # Errors
    /// The forward fails; a cluster without a local ingress port that
    /// does not say its own way.
    fn ingress(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &std::path::Path,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<(String, u16)> {
        let Some(local) = self.ingress_local_port() else {
            anyhow::bail!("{} has no way to reach its ingress", self.name());
        };
        crate::targets::engine::forward_ingress(
            cx,
            engine,
            state,
            (namespace, service, port),
            local,
        )
    }

    /// Why `cargo xtask dev` does not run on it (`Target::dev_loop`).
    ///
    /// # Errors
    /// The reason, with what to use instead.
    fn dev_loop(&self) -> Result<()> {
        Ok(())
    }

    /// How this machine reaches its services, where that depends on the
    /// setup (minikube's driver): a line for `status`. None: nothing to
    /// say.
    fn reached_by(&self, _cx: &Ctx) -> Option<String> {
        None
    }

    /// The platform its nodes run when the API cannot say (the cluster is
    /// not up yet; a dry run): from its settings or its container engine.
    /// None: this host's.
    ///
    /// # Errors
    /// An engine that reports a platform images are not built for.
    fn planned_platform(&self, _cx: &Ctx) -> Result<Option<crate::build::platform::Platform>> {
        Ok(None)
    }

    /// The cargo profile its services are built with: `release` where
    /// images are loaded into a local cluster's node.
    fn profile(&self) -> crate::build::Profile {
        crate::build::Profile::Release
    }

    /// Whether installing Seldon Core needs the user bound to cluster-admin
    /// (the tutorial's clusterrolebinding on GKE). minikube's and kind's
    /// kubeconfig users are cluster-admin already.
    /// What stops this cluster kind from being used now, each with what to
    /// do (doctor's readiness). Changes nothing.
    fn blockers(&self, _cx: &Ctx) -> Vec<String> {
        Vec::new()
    }

    fn needs_admin_binding(&self) -> bool {
        false
    }

    /// The user to bind to cluster-admin, when [`Self::needs_admin_binding`].
    fn admin_user(&self, _cx: &Ctx) -> Result<String> {
        anyhow::bail!("the {} cluster's user needs no admin binding", self.name())
    }
}
