//! Where services run: each target implements `Target`, and the commands
//! drive any of them the same way. `local` and `docker` are one file each;
//! the Kubernetes targets are one target (`kube.rs`) over a `Cluster`
//! (`clusters/`, one file per cluster kind). Adding a target is one file
//! here and a line in [`for_name`].

pub mod clusters;
mod docker;
pub mod engine;
pub mod kube;
mod local;
pub mod target;

pub use docker::engine_platform;

use crate::ground::settings::TargetName;
use crate::targets::target::Target;

/// The target of that name. (Exhaustive: a new `TargetName` must be
/// placed here.)
pub fn for_name(name: TargetName) -> Box<dyn Target> {
    match name {
        TargetName::Local => Box::new(local::Local),
        TargetName::Docker => Box::new(docker::Docker),
        TargetName::Minikube | TargetName::Kind | TargetName::Gke => {
            match clusters::for_name(name) {
                Some(cluster) => Box::new(kube::Kube::new(cluster)),
                None => unreachable!("every Kubernetes target has a cluster kind"),
            }
        }
    }
}
