//! Where services run: each target implements `Target`, and the commands
//! drive any of them the same way. `local` and `docker` are one file each;
//! the Kubernetes targets are one target (`kube.rs`) over a `Cluster`
//! (`clusters/`, one file per cluster kind). Adding a target is one file
//! here and a line in [`for_name`].

pub mod clusters;
mod docker;

pub use docker::engine_platform;
pub mod engine;
pub mod kube;
mod local;
pub mod target;

use crate::ground::settings::{Config, TargetName};
use crate::targets::target::Target;

/// The target of that name, holding its settings from `config`.
/// (Exhaustive: a new `TargetName` must be placed here.)
pub fn for_name(name: TargetName, config: &Config) -> Box<dyn Target> {
    match name {
        TargetName::Local => Box::new(local::Local {
            settings: config.local.clone(),
            services: crate::ground::services::names(config),
        }),
        TargetName::Docker => Box::new(docker::Docker {
            settings: config.docker.clone(),
            ready_timeout_secs: config.local.ready_timeout_secs,
            stop_grace_secs: config.local.stop_grace_secs,
            services: crate::ground::services::names(config),
        }),
        TargetName::Minikube | TargetName::Kind | TargetName::Gke => {
            match clusters::for_name(name, config) {
                Some(cluster) => Box::new(kube::Kube::new(cluster, config)),
                None => unreachable!("every Kubernetes target has a cluster kind"),
            }
        }
    }
}

/// The platform the machines of `name`'s target run, asked as a deploy
/// asks them where the target answers (a cluster on its expected kube
/// context, the docker engine), else what a cluster will run
/// (`Cluster::planned_platform`). None: this host's.
///
/// # Errors
/// A cluster's engine reports a platform images are not built for.
pub fn machines_platform(
    cx: &crate::ground::context::Ctx,
    name: TargetName,
) -> anyhow::Result<Option<crate::build::platform::Platform>> {
    let target = for_name(name, &cx.config);
    if let Ok(session) = target.open(cx)
        && let Ok(Some(p)) = target.platform(cx, &session)
    {
        return Ok(Some(p));
    }
    match clusters::for_name(name, &cx.config) {
        Some(cluster) => cluster.planned_platform(cx),
        None => Ok(None),
    }
}
