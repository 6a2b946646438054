//! The cluster kinds, one file each behind the [`Cluster`] trait. Adding
//! one (say k3d) is a new file here, its `TargetName` variant, and a line
//! in [`for_name`].

pub mod api;
pub mod cluster;
mod gke;
mod kind;
mod minikube;

pub use cluster::Cluster;

use crate::ground::settings::TargetName;

/// The cluster behind a Kubernetes target; None for local and docker.
pub fn for_name(name: TargetName) -> Option<Box<dyn Cluster>> {
    match name {
        TargetName::Minikube => Some(Box::new(minikube::Minikube)),
        TargetName::Kind => Some(Box::new(kind::Kind)),
        TargetName::Gke => Some(Box::new(gke::Gke)),
        TargetName::Local | TargetName::Docker => None,
    }
}

/// Every cluster kind.
pub fn all() -> Vec<Box<dyn Cluster>> {
    TargetName::ALL.into_iter().filter_map(for_name).collect()
}

/// The cluster kinds' target names, for messages: `minikube, kind or gke`.
pub fn names() -> String {
    let names: Vec<&str> = all().iter().map(|c| c.name().as_str()).collect();
    crate::ground::settings::one_of(&names)
}
