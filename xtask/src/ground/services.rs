//! The services the xtask builds and deploys, as the settings declare them
//! (`[services.<name>]` in xtask.toml): what to build, how it runs, how
//! deploy checks it.

use anyhow::{Result, bail};

use std::path::PathBuf;

use super::settings::{
    HttpSmoke, ModelName, NamedSmoke, Runtime, ServiceKind, ServiceSettings, Services,
    SmokeSettings,
};

/// Where an ONNX model's file is inside its image.
pub const MODELS_DIR: &str = "/models";

/// The workspace package that serves models.
pub const MODEL_SERVER: &str = "model-server";

#[derive(Clone, Debug)]
pub struct ServiceSpec {
    /// Name used on the command line, in state files, logs and as the
    /// Kubernetes object name (a DNS-1123 label).
    pub name: String,
    /// The Cargo package and binary target that build it.
    pub package: String,
    pub bin: String,
    pub settings: ServiceSettings,
    /// Environment it runs with in its image (beyond PORT).
    pub env: Vec<(String, String)>,
    /// The same for a process on this machine: MODEL_PATH names the file
    /// where it is, not where the image puts it.
    pub host_env: Vec<(String, String)>,
    pub smoke: Smoke,
    /// The ONNX file baked into its image under `MODELS_DIR/<name>.onnx`.
    pub model_file: Option<PathBuf>,
}

/// How deploy checks a service answers as it should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Smoke {
    /// GET /test_api answers the tutorial's greeting with real addresses.
    Greeting,
    /// A GET that must answer as `smoke = {...}` says.
    Http(HttpSmoke),
    /// The service's readiness only (a crate with no `smoke`).
    Ready,
    /// POST the tutorial's tensor and expect it back (identity model).
    Echo,
    /// Run a contract.json against it: the given one, or for None one
    /// derived from the model's metadata (its input width).
    Contract(Option<PathBuf>),
}

impl ServiceSpec {
    fn from_settings(root: &std::path::Path, s: &ServiceSettings) -> Self {
        let user_env: Vec<(String, String)> =
            s.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (package, bin, smoke, model_env, model_file) = match &s.kind {
            ServiceKind::Crate {
                package,
                bin,
                smoke,
            } => (
                package.clone(),
                bin.clone().unwrap_or_else(|| package.clone()),
                match smoke {
                    None => Smoke::Ready,
                    Some(SmokeSettings::Named(NamedSmoke::TutorialGreeting)) => Smoke::Greeting,
                    Some(SmokeSettings::Http(h)) => Smoke::Http(h.clone()),
                },
                Vec::new(),
                None,
            ),
            ServiceKind::Model(m) => {
                // The service's name is its model's name on the Open
                // Inference Protocol (/v2/models/<name>).
                let mut env = vec![
                    ("MODEL".to_string(), m.model.as_str().to_string()),
                    ("MODEL_NAME".to_string(), s.name.clone()),
                ];
                let list = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(","));
                for (key, value) in [
                    ("CLASS_NAMES", list(&m.class_names)),
                    ("FEATURE_NAMES", list(&m.feature_names)),
                    ("OUTPUT", m.output.clone()),
                    // tract, the server's default, goes unsaid.
                    (
                        "RUNTIME",
                        (m.runtime != Runtime::Tract).then(|| m.runtime.as_str().to_string()),
                    ),
                ] {
                    if let Some(v) = value {
                        env.push((key.to_string(), v));
                    }
                }
                let smoke = match (m.model, &m.contract) {
                    (_, Some(c)) => Smoke::Contract(Some(c.clone())),
                    (ModelName::Identity, None) => Smoke::Echo,
                    (ModelName::Iris, None) => {
                        Smoke::Contract(Some(root.join("services/model-server/contract.json")))
                    }
                    (ModelName::Onnx, None) => Smoke::Contract(None),
                };
                (
                    MODEL_SERVER.to_string(),
                    MODEL_SERVER.to_string(),
                    smoke,
                    env,
                    m.model_path.clone(),
                )
            }
        };
        let mut env = model_env.clone();
        let mut host_env = model_env;
        if let Some(file) = &model_file {
            env.push(("MODEL_PATH".into(), format!("{MODELS_DIR}/{}.onnx", s.name)));
            host_env.push(("MODEL_PATH".into(), file.display().to_string()));
        }
        env.extend(user_env.iter().cloned());
        host_env.extend(user_env);
        Self {
            name: s.name.clone(),
            package,
            bin,
            settings: s.clone(),
            env,
            host_env,
            smoke,
            model_file,
        }
    }
}

impl ServiceSpec {
    /// The ONNX runtime of a model; tract (the default) for the rest.
    pub fn runtime(&self) -> Runtime {
        match &self.settings.kind {
            ServiceKind::Model(m) => m.runtime,
            ServiceKind::Crate { .. } => Runtime::Tract,
        }
    }
}

/// Every service's name, in deploy order (the settings file's).
pub fn names(services: &Services) -> Vec<String> {
    services.0.iter().map(|s| s.name.clone()).collect()
}

/// The settings' image names, each once, in order (services may share one).
pub fn image_names(services: &Services) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in &services.0 {
        if !out.contains(&s.image) {
            out.push(s.image.clone());
        }
    }
    out
}

/// Every deployable service, in deploy order (the settings file's).
pub fn all(services: &Services, root: &std::path::Path) -> Vec<ServiceSpec> {
    services
        .0
        .iter()
        .map(|s| ServiceSpec::from_settings(root, s))
        .collect()
}

/// The named services in deploy order, each once, or all of them when
/// `names` is empty.
///
/// # Errors
/// A name that is not a service, with the list of known ones.
pub fn select(
    services: &Services,
    root: &std::path::Path,
    names: &[String],
) -> Result<Vec<ServiceSpec>> {
    let all = all(services, root);
    if let Some(n) = names.iter().find(|n| !all.iter().any(|s| s.name == **n)) {
        bail!(
            "unknown service `{n}`; known services: {}",
            all.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(all
        .into_iter()
        .filter(|s| names.is_empty() || names.contains(&s.name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_default_is_the_tutorials_two_services() {
        let names: Vec<_> = all(&Services::default(), Path::new("/w"))
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["test-api", "model-server"]);
    }

    #[test]
    fn the_tutorials_services_keep_todays_behaviour() -> Result<()> {
        let config = crate::ground::settings::parse(
            "[services.test-api]\n[services.model-server]\n[services.iris-model]\n",
        )?;
        let all = all(&config.services, Path::new("/w"));
        let api = &all[0];
        assert_eq!(
            (api.package.as_str(), api.bin.as_str()),
            ("test-api", "test-api")
        );
        assert_eq!(api.smoke, Smoke::Greeting);
        let identity = &all[1];
        assert_eq!(
            identity.env,
            [
                ("MODEL".to_string(), "identity".to_string()),
                ("MODEL_NAME".to_string(), "model-server".to_string())
            ]
        );
        assert_eq!(identity.smoke, Smoke::Echo);
        let iris = &all[2];
        assert_eq!(
            iris.smoke,
            Smoke::Contract(Some("/w/services/model-server/contract.json".into()))
        );
        assert_eq!(iris.settings.image, "model-server");
        Ok(())
    }

    #[test]
    fn runtime_onnxruntime_is_said_to_the_server_and_tract_goes_unsaid() -> Result<()> {
        let config = crate::ground::settings::parse(
            "[services.iris-model]\nruntime = \"onnxruntime\"\n\
             [services.plain]\nmodel = \"iris\"\nport = 5009\nruntime = \"tract\"\n",
        )?;
        let all = all(&config.services, Path::new("/w"));
        let env = |e: &[(String, String)], k: &str| {
            e.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(all[0].runtime(), Runtime::Onnxruntime);
        assert_eq!(env(&all[0].env, "RUNTIME").as_deref(), Some("onnxruntime"));
        assert_eq!(
            env(&all[0].host_env, "RUNTIME").as_deref(),
            Some("onnxruntime")
        );
        assert_eq!(all[1].runtime(), Runtime::Tract);
        assert_eq!(env(&all[1].env, "RUNTIME"), None);
        for (toml, says) in [
            (
                "[services.model-server]\nruntime = \"onnxruntime\"\n",
                "the identity model computes nothing",
            ),
            (
                "[services.api]\npackage = \"api\"\nport = 5010\nruntime = \"tract\"\n",
                "are keys of models",
            ),
            (
                "[services.iris-model]\nruntime = \"onnx\"\n",
                "unknown variant `onnx`",
            ),
            (
                "[services.iris-model]\nenv = { ORT_DYLIB_PATH = \"/x.so\" }\n",
                "sets ORT_DYLIB_PATH, which kube-mlops sets itself",
            ),
        ] {
            let err = format!(
                "{:#}",
                crate::ground::settings::parse(toml)
                    .err()
                    .ok_or_else(|| anyhow::anyhow!("accepted: {toml}"))?
            );
            assert!(err.contains(says), "{toml}: {err}");
        }
        Ok(())
    }

    #[test]
    fn an_onnx_model_runs_from_its_image_path_or_its_file() -> Result<()> {
        let mut config = crate::ground::settings::parse(
            "[services.wine]\nmodel = \"onnx\"\nmodel_path = \"/m/wine.onnx\"\nport = 6000\n\
             class_names = [\"a\", \"b\"]\nenv = { LOG_FORMAT = \"json\" }\n",
        )?;
        config.services.0[0].image = "wine".into();
        let wine = &all(&config.services, Path::new("/w"))[0];
        let env = |e: &[(String, String)], k: &str| {
            e.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(
            env(&wine.env, "MODEL_PATH").as_deref(),
            Some("/models/wine.onnx")
        );
        assert_eq!(
            env(&wine.host_env, "MODEL_PATH").as_deref(),
            Some("/m/wine.onnx")
        );
        assert_eq!(env(&wine.env, "CLASS_NAMES").as_deref(), Some("a,b"));
        assert_eq!(env(&wine.env, "LOG_FORMAT").as_deref(), Some("json"));
        assert_eq!(wine.smoke, Smoke::Contract(None));
        assert_eq!(wine.model_file, Some("/m/wine.onnx".into()));
        Ok(())
    }

    #[test]
    fn unknown_service_lists_known_ones() {
        let err =
            select(&Services::default(), Path::new("/w"), &["nope".into()]).expect_err("unknown");
        assert!(err.to_string().contains("unknown service `nope`"), "{err}");
        assert!(
            err.to_string()
                .contains("known services: test-api, model-server"),
            "{err}"
        );
    }

    #[test]
    fn a_service_named_twice_is_selected_once_in_deploy_order() -> Result<()> {
        let names = ["model-server", "test-api", "model-server"].map(String::from);
        let picked = select(&Services::default(), Path::new("/w"), &names)?;
        let picked: Vec<_> = picked.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(picked, ["test-api", "model-server"]);
        Ok(())
    }

    #[test]
    fn empty_selection_is_all() -> Result<()> {
        assert_eq!(
            select(&Services::default(), Path::new("/w"), &[])?.len(),
            all(&Services::default(), Path::new("/w")).len()
        );
        Ok(())
    }
}
