//! The cluster kinds, one file each behind the [`Cluster`] trait, and the
//! registry of them ([`KINDS`]). Adding one (say k3d) is a new file here
//! with its `ClusterKind` and a line in [`KINDS`].

pub mod api;
pub mod cluster;
mod gke;
mod k3d;
mod kind;
mod minikube;

pub use cluster::Cluster;

pub use cluster::ClusterKind;

use crate::ground::settings::{Config, TargetName};

/// The cluster kinds, one line each: `--target`'s values and help, the
/// completions and every list of kinds in a message come from here.
pub const KINDS: &[&ClusterKind] = &[&minikube::KIND, &kind::KIND, &k3d::KIND, &gke::KIND];

/// The cluster behind a Kubernetes target, holding its settings from
/// `config` (read here, once); None for local and docker.
///
/// # Errors
/// Its table in the settings is not what the kind takes.
pub fn for_name(name: TargetName, config: &Config) -> anyhow::Result<Option<Box<dyn Cluster>>> {
    KINDS
        .iter()
        .find(|k| k.name == name)
        .map(|k| (k.make)(config))
        .transpose()
}

/// Every cluster kind, with its settings from `config`.
///
/// # Errors
/// As `for_name`.
pub fn all(config: &Config) -> anyhow::Result<Vec<Box<dyn Cluster>>> {
    KINDS.iter().map(|k| (k.make)(config)).collect()
}

/// Checks the cluster kinds' tables of `config`: each names a kind, and
/// is what the kind takes.
///
/// # Errors
/// A table no kind reads (a misspelt one: the kinds are named), or one
/// its kind refuses.
pub fn check(config: &Config, text: &str) -> anyhow::Result<()> {
    // "line N: " where the settings file has what the message is about.
    let at = |table: &str, message: &str| {
        crate::ground::settings::line_in_table(text, table, message)
            .map_or_else(String::new, |n| format!("line {n}: "))
    };
    if let Some(other) = config
        .clusters
        .keys()
        .find(|k| !KINDS.iter().any(|kind| kind.name.as_str() == k.as_str()))
    {
        anyhow::bail!(
            "{}`{other}` is no setting: the tables are local, docker, registry, images, \
             kubernetes, seldon, services, and one per cluster kind ({})",
            at(other, ""),
            names()
        );
    }
    for kind in KINDS {
        if let Err(e) = (kind.make)(config) {
            let message = format!("{e:#}");
            anyhow::bail!("{}{message}", at(kind.name.as_str(), &message));
        }
    }
    Ok(())
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
    fn a_table_no_kind_reads_or_a_key_its_kind_does_not_take_is_refused() {
        let refused = |text: &str| {
            let config = crate::ground::settings::parse(text).expect("parses");
            format!("{:#}", check(&config, text).expect_err("taken"))
        };
        let e = refused("[kinds]\ncluster = \"x\"\n");
        assert!(e.starts_with("line 1: `kinds` is no setting"), "{e}");
        assert!(e.contains("(minikube, kind"), "{e}");
        // The line of the key the error names, not of another it lists.
        let e = refused("[k3d]\ncluster = \"dev\"\nagentz = 1\n");
        assert!(
            e.starts_with("line 3: [k3d]: unknown field `agentz`, expected `cluster`"),
            "{e}"
        );
        let e = refused("[k3d]\nagents = \"two\"\n");
        assert!(e.starts_with("line 2: [k3d]: invalid type"), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = refused("k3d = \"x\"\n");
        assert!(
            e.starts_with("line 1: [k3d] is a string, not a table"),
            "{e}"
        );
        let e = refused("[[kind]]\ncluster = \"x\"\n");
        assert!(e.contains("[kind] is an array, not a table"), "{e}");
        let e = refused("default_target = \"local\"\n\n[kind]\ncluster = \"Bad_Name\"\n");
        assert!(e.starts_with("line 4: kind.cluster = \"Bad_Name\""), "{e}");
        let e = refused("[gke]\nnum_nodes = 1\n\n[kind]\ncluster = \"Bad_Name\"\n");
        assert!(e.starts_with("line 5: kind.cluster"), "{e}");
        let text = "[kind]\ncluster = \"dev\"\n";
        let config = crate::ground::settings::parse(text).expect("parses");
        assert!(check(&config, text).is_ok());
    }

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
