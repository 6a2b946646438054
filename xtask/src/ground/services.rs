//! The services in services/ that the xtask builds and deploys.

use anyhow::{Result, bail};

use std::path::PathBuf;

use super::settings::{Config, ModelSettings, ServiceSettings};

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Name used on the command line, in state files and logs.
    pub name: &'static str,
    /// The Cargo package and binary target that build it.
    pub package: &'static str,
    pub bin: &'static str,
    pub settings: ServiceSettings,
    /// Environment the service runs with (beyond PORT).
    pub env: Vec<(String, String)>,
    pub smoke: Smoke,
    /// Files its image carries besides the binary.
    pub image_files: Option<FileSet>,
}

/// Files of one directory, by suffix, placed in an image directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSet {
    /// Relative to the workspace root.
    pub dir: PathBuf,
    pub suffix: &'static str,
    /// Directory in the image (relative to its root).
    pub dest: &'static str,
}

/// How deploy checks a service answers as it should.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Smoke {
    /// GET /test_api and check the greeting.
    Greeting,
    /// POST the tutorial's tensor and expect it back (identity model).
    Echo,
    /// Run services/model-server/contract.json against it.
    Contract,
}

/// Every deployable service, in deploy order.
pub fn all(config: &Config) -> Vec<ServiceSpec> {
    let s = &config.services;
    let model = |name, m: &ModelSettings| ServiceSpec {
        name,
        package: "model-server",
        bin: "model-server",
        settings: ServiceSettings {
            port: m.port,
            image: m.image.clone(),
        },
        env: vec![("MODEL".into(), m.model.clone())],
        smoke: match m.model.as_str() {
            "identity" => Smoke::Echo,
            _ => Smoke::Contract,
        },
        // The model server's image carries the models it can serve.
        image_files: Some(FileSet {
            dir: "services/model-server/models".into(),
            suffix: ".onnx",
            dest: "models",
        }),
    };
    vec![
        ServiceSpec {
            name: "test-api",
            package: "test-api",
            bin: "test-api",
            settings: s.test_api.clone(),
            env: Vec::new(),
            smoke: Smoke::Greeting,
            image_files: None,
        },
        model("model-server", &s.model_server),
        model("iris-model", &s.iris_model),
    ]
}

/// The named services in deploy order, each once, or all of them when
/// `names` is empty.
///
/// # Errors
/// A name that is not a service, with the list of known ones.
pub fn select(config: &Config, names: &[String]) -> Result<Vec<ServiceSpec>> {
    let all = all(config);
    if let Some(n) = names.iter().find(|n| !all.iter().any(|s| s.name == *n)) {
        bail!(
            "unknown service `{n}`; known services: {}",
            all.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(all
        .into_iter()
        .filter(|s| names.is_empty() || names.iter().any(|n| n == s.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_service_lists_known_ones() {
        let err = select(&Config::default(), &["nope".into()]).expect_err("unknown");
        assert!(err.to_string().contains("unknown service `nope`"), "{err}");
        assert!(
            err.to_string()
                .contains("test-api, model-server, iris-model"),
            "{err}"
        );
    }

    #[test]
    fn a_service_named_twice_is_selected_once_in_deploy_order() -> Result<()> {
        let names = ["iris-model", "test-api", "iris-model"].map(String::from);
        let picked = select(&Config::default(), &names)?;
        let picked: Vec<_> = picked.iter().map(|s| s.name).collect();
        assert_eq!(picked, ["test-api", "iris-model"]);
        Ok(())
    }

    #[test]
    fn empty_selection_is_all() -> Result<()> {
        assert_eq!(
            select(&Config::default(), &[])?.len(),
            all(&Config::default()).len()
        );
        Ok(())
    }
}
