//! The cluster kinds, one file each behind the [`Cluster`] trait, and the
//! registry of them ([`KINDS`]). Adding one (say k3d) is a new file here
//! with its `ClusterKind` and a line in [`KINDS`].

pub mod api;
pub mod cluster;
mod gke;
mod kind;
mod minikube;

pub use cluster::Cluster;

pub use cluster::ClusterKind;

use crate::ground::settings::{Config, TargetName};

/// The cluster kinds, one line each: `--target`'s values and help, the
/// completions and every list of kinds in a message come from here.
pub const KINDS: &[&ClusterKind] = &[&minikube::KIND, &kind::KIND, &gke::KIND];

/// The cluster behind a Kubernetes target, holding its settings from
/// `config` (read here, once); None for local and docker.
pub fn for_name(name: TargetName, config: &Config) -> Option<Box<dyn Cluster>> {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .map(|k| (k.make)(config))
}

/// Every cluster kind, with its settings from `config`.
pub fn all(config: &Config) -> Vec<Box<dyn Cluster>> {
    KINDS.iter().map(|k| (k.make)(config)).collect()
}

/// The cluster kinds' target names, for messages: `minikube, kind or gke`.
pub fn names() -> String {
    let names: Vec<&str> = KINDS.iter().map(|k| k.name.as_str()).collect();
    crate::ground::settings::one_of(&names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_name_and_says_how_to_install_its_tools() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "{names:?}");
        for kind in KINDS {
            for tool in kind.tools {
                let hint = crate::ground::tools::hint(tool);
                assert!(
                    hint.starts_with("Debian/Ubuntu: ") && hint.contains("; macOS: "),
                    "{}: {hint}",
                    kind.name
                );
            }
        }
        let minikube = KINDS.iter().find(|k| k.name.as_str() == "minikube");
        assert!(
            minikube
                .and_then(|k| k.tools.first())
                .is_some_and(|t| crate::ground::tools::hint(t).contains("brew install minikube"))
        );
    }
}
