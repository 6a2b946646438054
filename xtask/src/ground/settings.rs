//! `xtask.toml`: the settings a user edits. Every key has a default here
//! (the committed xtask.toml spells them out, and a test keeps the two equal),
//! so a partial file or none at all works. Unknown keys and wrong types are
//! errors that name the key, the line and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::names;
pub use super::service_settings::{
    HttpSmoke, ModelName, NamedSmoke, Runtime, ServiceKind, ServiceSettings, Services,
    SmokeSettings,
};

/// Where services run (`--target`, `default_target`): a name the targets'
/// registry makes (`targets::all`), plain data here; what each one does
/// lives in the targets module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetName(&'static str);

impl TargetName {
    /// The target called `name` (`local`, `kind`).
    pub const fn named(name: &'static str) -> Self {
        Self(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// `a, b or c`, for messages that list choices.
pub fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

impl std::fmt::Display for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// Not deny_unknown_fields, which serde does not combine with `flatten`:
// a top-level key no table takes lands in `clusters`, where the commands
// refuse it.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Target used when `--target` is not given (a name of
    /// `targets::all`, checked when the commands read the settings).
    pub default_target: String,
    pub registry: Registry,
    pub services: Services,
    pub local: Local,
    pub images: Images,
    pub docker: Docker,
    /// The cluster kinds' tables (`[minikube]`, `[kind]`, `[gke]`), as
    /// written: each kind reads its own (`targets::clusters::KINDS`), and
    /// the commands refuse a table no kind reads.
    #[serde(flatten)]
    pub clusters: BTreeMap<String, toml::Value>,
    pub kubernetes: Kubernetes,
    pub seldon: Seldon,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Registry {
    /// Registry host images are pushed to, e.g. docker.io or
    /// us-central1-docker.pkg.dev.
    pub host: String,
    /// Account or repository path under the host: images are named
    /// `<host>/<account>/<image>`.
    pub account: String,
    /// Whether the settings have a `[registry]` table: without one, GKE
    /// pushes to Artifact Registry in its project rather than to these
    /// defaults (Docker Hub's `kube-mlops`).
    #[serde(skip)]
    pub set: bool,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Local {
    /// Where pid, state and log files and the copies of the binaries that
    /// run (`bin/`) go; relative to the settings file.
    pub run_dir: PathBuf,
    /// How long deploy waits for a service to report ready.
    pub ready_timeout_secs: u64,
    /// How long teardown waits after SIGTERM before SIGKILL.
    pub stop_grace_secs: u64,
    /// The address services listen on (`BIND_ADDR`): loopback, as the
    /// docker target publishes; `0.0.0.0` exposes them to the network.
    #[serde(deserialize_with = "ip_address")]
    pub bind: std::net::IpAddr,
}

/// An IP address, or an error naming the key and what to write.
fn ip_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::net::IpAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "local.bind = {text:?} is not an IP address: use \"127.0.0.1\" (this machine only), \
             \"0.0.0.0\" (every address) or another address of this machine"
        ))
    })
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Images {
    /// Where image archives go; relative to the settings file.
    pub dir: PathBuf,
    /// The image the docker builder compiles the services in where this
    /// host cannot build the platform (`--toolchain docker`); None:
    /// `docker.io/library/rust:<channel>`, the channel
    /// `rust-toolchain.toml` pins.
    pub rust_builder: Option<String>,
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Docker {
    /// Containers are named `<prefix>-<service>`.
    pub name_prefix: String,
    /// Address published ports bind to on this machine.
    pub publish_address: String,
}

impl Default for Images {
    fn default() -> Self {
        Self {
            dir: "target/xtask/images".into(),
            rust_builder: None,
        }
    }
}

impl Default for Docker {
    fn default() -> Self {
        Self {
            name_prefix: "kube-mlops".into(),
            publish_address: "127.0.0.1".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_target: "local".into(),
            registry: Registry::default(),
            services: Services::default(),
            local: Local::default(),
            images: Images::default(),
            docker: Docker::default(),
            clusters: BTreeMap::new(),
            kubernetes: Kubernetes::default(),
            seldon: Seldon::default(),
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            host: "docker.io".into(),
            account: "kube-mlops".into(),
            set: false,
        }
    }
}

impl Default for Local {
    fn default() -> Self {
        Self {
            run_dir: "target/xtask/local".into(),
            ready_timeout_secs: 30,
            stop_grace_secs: 10,
            bind: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        }
    }
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Kubernetes {
    /// The namespace deploy/base puts everything in.
    pub namespace: String,
    /// Seconds deploy waits for the rollout of every Deployment.
    pub rollout_timeout_secs: u64,
    /// Seconds deploy waits for a LoadBalancer's external address (GKE).
    pub address_timeout_secs: u64,
    /// Rendered manifests and port-forward state; relative to the settings file.
    pub state_dir: PathBuf,
    /// The manifests: generated `base/`, `components/`, `seldon/` and the
    /// hand-written `overlays/`; relative to the settings file.
    pub manifests_dir: PathBuf,
}

impl Default for Kubernetes {
    fn default() -> Self {
        Self {
            namespace: "kube-mlops".into(),
            rollout_timeout_secs: 180,
            address_timeout_secs: 300,
            state_dir: "target/xtask/kube".into(),
            manifests_dir: "deploy".into(),
        }
    }
}

#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Seldon {
    /// Helm chart repository and the pinned seldon-core-operator chart version.
    pub chart_repo: String,
    pub chart_version: String,
    /// Namespace of the operator.
    pub operator_namespace: String,
    /// Namespace SeldonDeployments go in.
    pub namespace: String,
    /// Ingress in front of the models: ambassador or istio.
    pub ingress: Ingress,
    /// Install the ingress too (otherwise it must be there already).
    pub install_ingress: bool,
    /// The Ambassador chart installed when `install_ingress` (ambassador only).
    pub ambassador_chart_repo: String,
    pub ambassador_chart_version: String,
    /// Local port of the port-forward to the ingress (the local clusters).
    pub local_port: u16,
}

#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Ingress {
    Ambassador,
    Istio,
}

impl Default for Seldon {
    fn default() -> Self {
        Self {
            chart_repo: "https://storage.googleapis.com/seldon-charts".into(),
            chart_version: "1.18.2".into(),
            operator_namespace: "seldon-system".into(),
            namespace: "seldon".into(),
            ingress: Ingress::Ambassador,
            install_ingress: true,
            ambassador_chart_repo: "https://www.getambassador.io".into(),
            ambassador_chart_version: "6.9.5".into(),
            local_port: 8003,
        }
    }
}

/// Settings and where they came from.
pub struct Loaded {
    pub config: Config,
    /// The file read, or None for built-in defaults.
    pub source: Option<PathBuf>,
    /// Its text ("" for the defaults), to place later errors on a line.
    pub text: String,
}

impl Loaded {
    /// `explicit` (from `--config`) must exist; otherwise `<root>/xtask.toml`
    /// is read when present and the defaults are used when not.
    pub fn load(explicit: Option<&Path>, root: &Path) -> Result<Self> {
        let path = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => Some(root.join("xtask.toml")).filter(|p| p.exists()),
        };
        let Some(path) = path else {
            let mut config = Config::default();
            config.local.run_dir = root.join(&config.local.run_dir);
            config.images.dir = root.join(&config.images.dir);
            config.kubernetes.state_dir = root.join(&config.kubernetes.state_dir);
            config.kubernetes.manifests_dir = root.join(&config.kubernetes.manifests_dir);
            return Ok(Self {
                config,
                source: None,
                text: String::new(),
            });
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read settings file {}", path.display()))?;
        let mut config =
            parse(&text).with_context(|| format!("invalid settings in {}", path.display()))?;
        let settings_path = path.clone();
        let base = path.parent().unwrap_or(root);
        let base = if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        };
        config.local.run_dir = base.join(&config.local.run_dir);
        config.images.dir = base.join(&config.images.dir);
        config.kubernetes.state_dir = base.join(&config.kubernetes.state_dir);
        config.kubernetes.manifests_dir = base.join(&config.kubernetes.manifests_dir);
        for service in &mut config.services.0 {
            service.file = Some(path.clone());
            if let ServiceKind::Model(m) = &mut service.kind {
                for (key, path) in [
                    ("model_path", &mut m.model_path),
                    ("contract", &mut m.contract),
                ] {
                    let Some(path) = path else { continue };
                    let shown = path.display().to_string();
                    *path = base.join(&*path);
                    if !path.is_file() {
                        bail!(
                            "services.{}.{key} = {shown:?} ({}:{}): there is no such file as \
                             {} (paths are relative to the settings file)",
                            service.name,
                            settings_path.display(),
                            service.line,
                            path.display()
                        );
                    }
                }
            }
        }
        Ok(Self {
            config,
            source: Some(path),
            text,
        })
    }
}

/// The 1-based line in the settings `text` of what `message` is about in
/// its table `table`: the key the message names first (in backticks, as
/// serde names keys, or as `table.key =`), else the table's header. None
/// when `text` has no such table.
pub fn line_in_table(text: &str, table: &str, message: &str) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let key = doc.key(table)?;
    let named = doc.get(table)?.as_table_like().and_then(|t| {
        t.iter()
            .filter_map(|(k, _)| {
                let at = [format!("`{k}`"), format!("{table}.{k} ")]
                    .iter()
                    .filter_map(|m| message.find(m.as_str()))
                    .min()?;
                Some((at, t.key(k)?))
            })
            .min_by_key(|(at, _)| *at)
            .map(|(_, k)| k)
    });
    let span = named.unwrap_or(key).span()?;
    Some(text[..span.start.min(text.len())].matches('\n').count() + 1)
}

/// Parses and checks what serde cannot.
pub fn parse(text: &str) -> Result<Config> {
    let mut config: Config =
        toml::from_str(text).map_err(|e| super::service_settings::located(text, e))?;
    config.registry.set =
        toml::from_str::<toml::Table>(text).is_ok_and(|t| t.contains_key("registry"));
    super::service_settings::line_numbers(&mut config.services, text);
    super::service_settings::check(&config.services)?;
    if config.kubernetes.rollout_timeout_secs == 0 || config.kubernetes.address_timeout_secs == 0 {
        bail!(
            "kubernetes.rollout_timeout_secs and kubernetes.address_timeout_secs must be at least 1"
        );
    }
    if config.seldon.ingress == Ingress::Istio && config.seldon.install_ingress {
        bail!(
            "seldon.ingress = \"istio\" needs seldon.install_ingress = false: kube-mlops installs \
             Ambassador, but requires an Istio you installed (with its seldon-gateway)"
        );
    }
    if config.local.ready_timeout_secs == 0 {
        bail!("local.ready_timeout_secs must be at least 1");
    }
    check_names(&config)?;
    Ok(config)
}

type NameCheck = fn(&str) -> Result<(), String>;

/// Names handed to registries, docker, clusters and Kubernetes.
fn check_names(c: &Config) -> Result<()> {
    let r = &c.registry;
    for service in &c.services.0 {
        let (name, image) = (&service.name, &service.image);
        if let Err((part, why)) = names::image_reference(&r.host, &r.account, image) {
            let (key, value) = match part {
                names::Part::Host => ("registry.host".to_string(), &r.host),
                names::Part::Account => ("registry.account".to_string(), &r.account),
                names::Part::Image => (format!("services.{name}.image"), image),
            };
            bail!("{key} = {value:?} is not valid in an image reference: {why}");
        }
    }
    let checks: [(&str, &str, NameCheck); 4] = [
        (
            "kubernetes.namespace",
            &c.kubernetes.namespace,
            names::dns1123_label,
        ),
        (
            "seldon.namespace",
            &c.seldon.namespace,
            names::dns1123_label,
        ),
        (
            "seldon.operator_namespace",
            &c.seldon.operator_namespace,
            names::dns1123_label,
        ),
        (
            "docker.name_prefix",
            &c.docker.name_prefix,
            names::container_name,
        ),
    ];
    for (key, value, check) in checks {
        check(value).map_err(|why| anyhow::anyhow!("{key} = {value:?} {why}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("should be rejected"))
    }

    #[test]
    fn names_are_checked_before_anything_uses_them() {
        let e = err("[services.test-api]\nimage = \"../..\"");
        assert!(
            e.starts_with("services.test-api.image = \"../..\" is not valid in an image reference"),
            "{e}"
        );
        let e = err("[registry]\naccount = \"Me\"");
        assert!(e.starts_with("registry.account = \"Me\""), "{e}");
        let e = err("[kubernetes]\nnamespace = \"Kube_MLOps\"");
        assert!(e.contains("must be a DNS-1123 label"), "{e}");
        let e = err("[docker]\nname_prefix = \"a b\"");
        assert!(e.starts_with("docker.name_prefix = \"a b\" must be"), "{e}");
        // A cluster kind's names: its file's tests.
    }

    #[test]
    fn committed_file_spells_out_the_defaults() -> Result<()> {
        let text = include_str!("../../../xtask.toml");
        let mut parsed = parse(text)?;
        // Where a table is in the file is not a setting.
        for s in &mut parsed.services.0 {
            s.line = 0;
        }
        // The cluster kinds' tables are theirs to check (each kind's
        // tests compare its table here with its defaults).
        let kinds: Vec<&str> = parsed.clusters.keys().map(String::as_str).collect();
        assert_eq!(kinds, ["gke", "k3d", "kind", "minikube"]);
        parsed.clusters.clear();
        assert_eq!(parsed, Config::default());
        Ok(())
    }

    #[test]
    fn empty_file_is_all_defaults() -> Result<()> {
        assert_eq!(parse("")?, Config::default());
        Ok(())
    }

    #[test]
    fn partial_file_keeps_other_defaults() -> Result<()> {
        let c =
            parse("[services.test-api]\nport = 8080\nimage = \"x\"\n[gke]\nproject = \"my-proj\"")?;
        assert_eq!(c.services.0.len(), 1, "the tables declare the services");
        assert_eq!(c.services.0[0].port, 8080);
        // A cluster kind's table is its kind's to read, as written.
        assert_eq!(c.clusters["gke"]["project"].as_str(), Some("my-proj"));
        Ok(())
    }

    #[test]
    fn a_service_table_with_only_a_port_keeps_its_other_defaults() -> Result<()> {
        let c = parse("[services.iris-model]\nport = 6002\n")?;
        let iris = &c.services.0[0];
        assert_eq!(iris.port, 6002);
        assert!(matches!(&iris.kind, ServiceKind::Model(m) if m.model == ModelName::Iris));
        assert_eq!(iris.image, "model-server");
        assert_eq!(iris.line, 1);
        // A built-in name may change kind: then it keeps only the port.
        let c = parse("[services.test-api]\nmodel = \"iris\"\n")?;
        let api = &c.services.0[0];
        assert!(matches!(&api.kind, ServiceKind::Model(m) if m.model == ModelName::Iris));
        assert_eq!((api.port, api.image.as_str()), (5000, "model-server"));
        Ok(())
    }

    #[test]
    fn services_are_declared_in_file_order_with_their_lines() -> Result<()> {
        let c = parse(
            "[services.zeta]\nport = 6000\n\n[services.alpha]\nmodel = \"onnx\"\n\
             model_path = \"m/alpha.onnx\"\nport = 6001\nenv = { LOG_FORMAT = \"json\" }\n",
        )?;
        let names: Vec<_> = c
            .services
            .0
            .iter()
            .map(|s| (s.name.as_str(), s.line))
            .collect();
        assert_eq!(names, [("zeta", 1), ("alpha", 4)]);
        let zeta = &c.services.0[0];
        assert!(
            matches!(&zeta.kind, ServiceKind::Crate { package, .. } if package == "zeta"),
            "a crate named after the service by default"
        );
        assert_eq!(zeta.image, "zeta");
        assert!(!zeta.seldon);
        let alpha = &c.services.0[1];
        assert!(alpha.seldon, "models are Seldon components by default");
        assert_eq!(alpha.image, "alpha", "an ONNX model's image holds its file");
        assert_eq!(
            alpha.env.get("LOG_FORMAT").map(String::as_str),
            Some("json")
        );
        Ok(())
    }

    #[test]
    fn service_errors_name_the_key() {
        for (text, says) in [
            (
                "[services.Wine]\nport = 1\n",
                "[services.Wine]: the name must be a DNS-1123 label",
            ),
            (
                "[services.w]\nmodel = \"onnx\"\nport = 1\n",
                "services.w.model = \"onnx\" needs model_path",
            ),
            (
                "[services.w]\nmodel = \"iris\"\npackage = \"x\"\nport = 1\n",
                "has both `model` and `package`",
            ),
            (
                "[services.w]\npackage = \"x\"\n",
                "[services.w] needs a port",
            ),
            (
                "[services.w]\nport = 1\ncontract = \"c.json\"\n",
                "are keys of models (`model = \"onnx\"`",
            ),
            (
                "[services.w]\nport = 1\nreplicas = 0\n",
                "services.w.replicas must be at least 1",
            ),
            (
                "[services.w]\nport = 1\nenv = { PORT = \"2\" }\n",
                "sets PORT, which kube-mlops sets itself",
            ),
            (
                "[services.w]\nport = 1\nenv = { \"A-B\" = \"2\" }\n",
                "\"A-B\" is not an environment variable name",
            ),
            (
                "[services.w]\nport = 1\nsmoke = { path = \"/\", code = 200 }\n",
                "code",
            ),
            ("[services]\n", "declares no service"),
            (
                "[services.a]\nport = 1\n\n[services.9w]\nport = 2\n",
                "line 4: [services.9w]: the name must start with a letter",
            ),
            (
                "[services.w]\nport = 1\nenv = { CLASS_NAMES = \"a\" }\n",
                "sets CLASS_NAMES, which kube-mlops sets itself",
            ),
            (
                "[services.w]\nmodel = \"iris\"\nport = 1\nclass_names = [\"a,b\", \"c\", \"d\"]\n",
                "holds a comma",
            ),
            (
                "[services.w]\nmodel = \"iris\"\nport = 1\nclass_names = [\"a\", \"a\", \"d\"]\n",
                "\"a\" is there twice",
            ),
            (
                "[services.w]\nmodel = \"identity\"\nport = 1\nclass_names = [\"a\"]\n",
                "the identity model returns what it is sent",
            ),
            (
                "[services.w]\nport = 1\nresources = { cpu_request = \"2\", cpu_limit = \"500m\" }\n",
                "cpu_request \"2\" is above cpu_limit \"500m\"",
            ),
            (
                "[services.w]\nport = 1\nsmoke = \"greeting\"\n",
                "unknown smoke \"greeting\": smoke is \"tutorial-greeting\" or",
            ),
            (
                "[services.w]\nport = 1\nsmoke = { path = \"x\" }\n",
                "smoke.path \"x\" must start with /",
            ),
            (
                "[services.w]\nport = 1\nsmoke = { path = \"/x\", status = 999 }\n",
                "not an HTTP status",
            ),
        ] {
            let e = err(text);
            assert!(e.contains(says), "{text:?}: {e}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err("[local]\nrun_dri = \"x\"\n");
        assert!(e.contains("run_dri"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = err("[services.test-api]\nport = \"five thousand\"\nimage = \"t\"\n");
        assert!(e.contains("port"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn zero_port_is_rejected() {
        let e = err("[services.test-api]\nport = 0\nimage = \"t\"\n");
        assert!(e.contains("services.test-api.port"), "{e}");
    }

    #[test]
    fn shared_ports_and_unknown_models_are_refused() {
        let e = err(
            "[services.test-api]\n[services.iris-model]\nport = 5000\nimage = \"m\"\nmodel = \"iris\"\n",
        );
        assert!(
            e.contains(
                "services.iris-model.port (line 2) and services.test-api.port are both 5000"
            ),
            "{e}"
        );
        let e = err("[services.model-server]\nport = 5001\nimage = \"m\"\nmodel = \"xgboost\"\n");
        assert!(e.contains("xgboost"), "{e}");
        assert!(e.contains("identity"), "{e}");
    }

    #[test]
    fn relative_run_dir_is_relative_to_the_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("custom.toml");
        std::fs::write(&file, "[local]\nrun_dir = \"state\"\n")?;
        let loaded = Loaded::load(Some(&file), Path::new("/nonexistent-root"))?;
        assert_eq!(loaded.config.local.run_dir, dir.path().join("state"));
        Ok(())
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = Loaded::load(Some(Path::new("/no/such/xtask.toml")), Path::new("/"))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(e.contains("/no/such/xtask.toml"), "{e}");
    }
}
