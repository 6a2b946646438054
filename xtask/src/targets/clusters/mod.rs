//! The cluster kinds, one file each behind the [`Cluster`] trait, and the
//! registry that makes them from the settings ([`for_name`]). Adding one
//! (say k3d) is a new file here, its `TargetName` variant, and a line in
//! [`for_name`].

pub mod api;
pub mod cluster;
mod gke;
mod kind;
mod minikube;

pub use cluster::Cluster;

use crate::ground::settings::{Config, TargetName};

/// The cluster behind a Kubernetes target, holding its settings from
/// `config` (read here, once); None for local and docker.
pub fn for_name(name: TargetName, config: &Config) -> Option<Box<dyn Cluster>> {
    let namespace = config.kubernetes.namespace.clone();
    match name {
        TargetName::Minikube => Some(Box::new(minikube::Minikube {
            settings: config.minikube.clone(),
            namespace,
            ingress_local_port: config.seldon.local_port,
        })),
        TargetName::Kind => Some(Box::new(kind::Kind {
            settings: config.kind.clone(),
            namespace,
            ingress_local_port: config.seldon.local_port,
        })),
        TargetName::Gke => Some(Box::new(gke::Gke {
            settings: config.gke.clone(),
            registry: config.registry.clone(),
            images: crate::ground::services::image_names(&config.services),
            namespace,
            address_timeout_secs: config.kubernetes.address_timeout_secs,
            project: std::sync::OnceLock::new(),
        })),
        TargetName::Local | TargetName::Docker => None,
    }
}

/// Every cluster kind, with its settings from `config`.
pub fn all(config: &Config) -> Vec<Box<dyn Cluster>> {
    TargetName::ALL
        .into_iter()
        .filter_map(|name| for_name(name, config))
        .collect()
}

/// The cluster kinds' target names, for messages: `minikube, kind or gke`.
pub fn names() -> String {
    let names: Vec<&str> = all(&Config::default())
        .iter()
        .map(|c| c.name().as_str())
        .collect();
    crate::ground::settings::one_of(&names)
}
