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
use crate::targets::clusters::Cluster;
use crate::targets::target::Target;

/// Background processes on this machine.
pub const LOCAL: TargetName = TargetName::named("local");
/// Containers through the docker CLI.
pub const DOCKER: TargetName = TargetName::named("docker");

/// Every target with what it is (for `--help`): local and docker, then
/// the cluster kinds in their registry's order (`clusters::KINDS`).
pub fn all() -> Vec<(TargetName, &'static str)> {
    [
        (LOCAL, "Background processes on this machine"),
        (
            DOCKER,
            "Containers through the docker CLI (Docker Engine or podman)",
        ),
    ]
    .into_iter()
    .chain(clusters::KINDS.iter().map(|k| (k.name, k.about)))
    .collect()
}

/// The target called `name`.
///
/// # Errors
/// No target is called so, with the names there are.
pub fn named(name: &str) -> Result<TargetName, String> {
    let all = all();
    all.iter()
        .map(|(t, _)| *t)
        .find(|t| t.as_str() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|(t, _)| t.as_str()).collect();
            format!(
                "unknown target {name:?}: expected {}",
                crate::ground::settings::one_of(&names)
            )
        })
}

/// The target of that name, holding its settings from `config` and
/// `setup` (how its images are made, every service of the settings): the
/// registry where the settings become targets, as `clusters::for_name`
/// is for cluster kinds.
///
/// # Errors
/// A cluster kind's table is not what it takes; a name that is no target.
pub fn for_name(
    name: TargetName,
    config: &Config,
    setup: &crate::image::Setup,
) -> anyhow::Result<Box<dyn Target>> {
    let services = crate::ground::services::names(&config.services);
    Ok(match name {
        LOCAL => Box::new(local::Local {
            settings: config.local.clone(),
            services,
        }),
        DOCKER => Box::new(docker::Docker {
            settings: config.docker.clone(),
            ready_timeout_secs: config.local.ready_timeout_secs,
            stop_grace_secs: config.local.stop_grace_secs,
            services,
            setup: setup.clone(),
        }),
        _ => match clusters::for_name(name, config)? {
            Some(cluster) => Box::new(kube::Kube::new(
                cluster,
                config.kubernetes.clone(),
                config.seldon.clone(),
                setup.clone(),
            )),
            None => anyhow::bail!("{name} is neither local, docker nor a cluster kind"),
        },
    })
}

/// The platform the machines of `target` run, asked as a deploy asks them
/// where the target answers (a cluster on its expected kube context, the
/// docker engine), else what its `cluster` will run
/// (`Cluster::planned_platform`). None: this host's.
///
/// # Errors
/// A cluster's engine reports a platform images are not built for.
pub fn machines_platform(
    cx: &crate::ground::context::Ctx,
    target: &dyn Target,
    cluster: Option<&dyn Cluster>,
) -> anyhow::Result<Option<crate::build::platform::Platform>> {
    if let Ok(session) = target.open(cx)
        && let Ok(Some(p)) = target.platform(cx, &session)
    {
        return Ok(Some(p));
    }
    match cluster {
        Some(cluster) => cluster.planned_platform(cx),
        None => Ok(None),
    }
}
