//! `[services.<name>]` in xtask.toml: every service kube-mlops builds and
//! deploys, in the order the file lists them. A service is a **model**
//! served by the workspace's model server (`model = "identity" | "iris" |
//! "onnx"`) or a **crate** of the workspace (`package`, defaulting to the
//! service's name). Without any `[services.*]` table, the tutorial's three
//! services are deployed; a table named after one of them starts from that
//! service's settings.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::Deserialize;
use toml::Spanned;

use super::names;

/// The services, in deploy order.
#[derive(Debug, Clone, PartialEq)]
pub struct Services(pub Vec<ServiceSettings>);

/// One `[services.<name>]` table, defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSettings {
    /// The table's name: a DNS-1123 label, used as the Kubernetes object,
    /// container and log names.
    pub name: String,
    pub kind: ServiceKind,
    /// Port the service listens on (and is published or forwarded on
    /// locally).
    pub port: u16,
    /// Image name, without registry or tag.
    pub image: String,
    /// Pods of its Deployment (Kubernetes targets).
    pub replicas: u32,
    /// Environment it runs with, beyond what kube-mlops sets.
    pub env: BTreeMap<String, String>,
    /// Kubernetes resource requests and limits (quantities as Kubernetes
    /// writes them: `50m`, `128Mi`).
    pub resources: Resources,
    /// Also deployed as a SeldonDeployment by `deploy --seldon`.
    pub seldon: bool,
    /// The SeldonDeployment's name (and its URL path under the ingress):
    /// `seldon-<name>` unless `seldon_name` says otherwise.
    pub seldon_name: String,
    /// 1-based line of the table in the settings file (0: built in), for
    /// errors found after parsing.
    pub line: usize,
    /// The settings file the table is in (None: built in, or parsed from
    /// text alone), for errors found after parsing.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServiceKind {
    /// Served by the workspace's `model-server` crate.
    Model(ModelSettings),
    /// A binary of a workspace package.
    Crate {
        package: String,
        /// The binary target, when the package has several.
        bin: Option<String>,
        /// What deploy checks once it answers (default: its readiness).
        smoke: Option<SmokeSettings>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSettings {
    /// `identity`, `iris` (built into the server) or `onnx`.
    pub model: ModelName,
    /// The ONNX file (`model = "onnx"`), relative to the settings file
    /// until `Loaded::load` makes it absolute.
    pub model_path: Option<PathBuf>,
    /// Output column names (CLASS_NAMES); default: the file's.
    pub class_names: Option<Vec<String>>,
    /// Input column names (FEATURE_NAMES); default: the file's.
    pub feature_names: Option<Vec<String>>,
    /// The graph output answered with (OUTPUT); default: the probabilities.
    pub output: Option<String>,
    /// A contract.json for the smoke test (relative to the settings file);
    /// default: the iris contract for iris, one derived from the model's
    /// input width for onnx, an echo of the tutorial's tensor for identity.
    pub contract: Option<PathBuf>,
    /// The ONNX runtime that computes it (RUNTIME); iris and onnx only.
    pub runtime: Runtime,
}

/// `runtime = "tract" | "onnxruntime"`: tract is built into the model
/// server (pure Rust, a static binary on an empty base); ONNX Runtime is
/// its C++ library, loaded at start-up from the pinned `onnxruntime` wheel
/// (a dynamically linked server on a C runtime base). docs/figures.md's runtime
/// figures say which is faster for which graphs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    #[default]
    Tract,
    Onnxruntime,
}

impl Runtime {
    /// The name in xtask.toml and in the model server's RUNTIME.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tract => "tract",
            Self::Onnxruntime => "onnxruntime",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelName {
    Identity,
    Iris,
    Onnx,
}

impl ModelName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Iris => "iris",
            Self::Onnx => "onnx",
        }
    }
}

/// A crate's `smoke`: `"tutorial-greeting"` (GET /test_api answers the
/// tutorial's `{"message":"Hello <client ip>, you've reached <server ip>"}`
/// with real addresses) or an HTTP check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmokeSettings {
    Named(NamedSmoke),
    Http(HttpSmoke),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedSmoke {
    TutorialGreeting,
}

/// Either form, each refused with what it should be.
impl<'de> Deserialize<'de> for SmokeSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        const FORMS: &str = "smoke is \"tutorial-greeting\" or { path = \"/hello\", status = 200, \
                             json = \"field\", contains = \"text\" }";
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) if s == "tutorial-greeting" => {
                Ok(Self::Named(NamedSmoke::TutorialGreeting))
            }
            toml::Value::String(s) => {
                Err(D::Error::custom(format!("unknown smoke {s:?}: {FORMS}")))
            }
            v @ toml::Value::Table(_) => {
                let h: HttpSmoke = v.try_into().map_err(|e: toml::de::Error| {
                    D::Error::custom(format!("{}; {FORMS}", e.message()))
                })?;
                if !h.path.starts_with('/') {
                    return Err(D::Error::custom(format!(
                        "smoke.path {:?} must start with /",
                        h.path
                    )));
                }
                if !(100..=599).contains(&h.status) {
                    return Err(D::Error::custom(format!(
                        "smoke.status {} is not an HTTP status (100-599)",
                        h.status
                    )));
                }
                Ok(Self::Http(h))
            }
            other => Err(D::Error::custom(format!(
                "smoke is a {}: {FORMS}",
                other.type_str()
            ))),
        }
    }
}

/// `smoke = { path = "/hello", status = 200, json = "message", contains =
/// "Hello" }`: a GET that must answer `status`, and when `json` is given, a
/// JSON object with that field (a string containing `contains`, when
/// given; without `json`, the body must contain it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSmoke {
    pub path: String,
    #[serde(default = "ok_status")]
    pub status: u16,
    pub json: Option<String>,
    pub contains: Option<String>,
}

fn ok_status() -> u16 {
    200
}

/// Requests and limits; the defaults fit the services' memory bound (see
/// the model server's README, "Memory").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_request: "50m".into(),
            memory_request: "32Mi".into(),
            cpu_limit: "500m".into(),
            memory_limit: "128Mi".into(),
        }
    }
}

impl Default for Services {
    /// The test API and the identity model: the tutorial's two services.
    /// iris is a preset only (a `[services.iris-model]` table deploys it):
    /// it needs the model server's ONNX runtime, which is most of a cold
    /// build, and the quick start should serve in minutes.
    fn default() -> Self {
        Self(
            builtin()
                .into_iter()
                .filter(|s| s.name != IRIS_PRESET)
                .collect(),
        )
    }
}

/// The built-in presets' names and ports (`[services.<name>]` with no
/// keys deploys one): a new service's port avoids those not configured,
/// so that enabling one later does not collide.
pub fn preset_ports() -> Vec<(String, u16)> {
    builtin().into_iter().map(|s| (s.name, s.port)).collect()
}

/// The preset that only a table of its name deploys.
const IRIS_PRESET: &str = "iris-model";

/// The presets a table of the same name starts from: the test API, the
/// identity model (the Seldon component) and the iris classifier.
fn builtin() -> Vec<ServiceSettings> {
    let model = |name: &str, port, model| ServiceSettings {
        name: name.into(),
        kind: ServiceKind::Model(ModelSettings {
            model,
            model_path: None,
            class_names: None,
            feature_names: None,
            output: None,
            contract: None,
            runtime: Runtime::Tract,
        }),
        port,
        image: "model-server".into(),
        replicas: 1,
        env: BTreeMap::new(),
        resources: Resources::default(),
        seldon: true,
        seldon_name: format!("seldon-{name}"),
        line: 0,
        file: None,
    };
    vec![
        ServiceSettings {
            name: "test-api".into(),
            kind: ServiceKind::Crate {
                package: "test-api".into(),
                bin: None,
                smoke: Some(SmokeSettings::Named(NamedSmoke::TutorialGreeting)),
            },
            port: 5000,
            image: "test-api".into(),
            replicas: 1,
            env: BTreeMap::new(),
            resources: Resources::default(),
            seldon: false,
            seldon_name: "seldon-test-api".into(),
            line: 0,
            file: None,
        },
        // The tutorial's name for the identity model's SeldonDeployment.
        ServiceSettings {
            seldon_name: "seldon-test-model".into(),
            ..model("model-server", 5001, ModelName::Identity)
        },
        model(IRIS_PRESET, 5002, ModelName::Iris),
    ]
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    model: Option<ModelName>,
    model_path: Option<PathBuf>,
    class_names: Option<Vec<String>>,
    feature_names: Option<Vec<String>>,
    output: Option<String>,
    contract: Option<PathBuf>,
    runtime: Option<Runtime>,
    package: Option<String>,
    bin: Option<String>,
    smoke: Option<SmokeSettings>,
    port: Option<u16>,
    image: Option<String>,
    replicas: Option<u32>,
    env: Option<BTreeMap<String, String>>,
    resources: Option<Resources>,
    seldon: Option<bool>,
    seldon_name: Option<String>,
}

impl<'de> Deserialize<'de> for Services {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Keyed by name (a `Spanned` orders by its value), then put back in
        // the file's order by where each table starts.
        let mut tables: Vec<_> = BTreeMap::<Spanned<String>, Spanned<Raw>>::deserialize(d)?
            .into_iter()
            .collect();
        tables.sort_by_key(|(name, _)| name.span().start);
        let builtin = builtin();
        tables
            .into_iter()
            .map(|(name, raw)| {
                let span = name.span();
                let name = name.into_inner();
                let base = builtin.iter().find(|s| s.name == name);
                resolve(name, raw.into_inner(), base)
                    .map(|mut s| {
                        // Filled in by `line_numbers` with the file's text.
                        s.line = span.start + 1;
                        s
                    })
                    // toml would point at the first service's table: carry
                    // this table's offset for `located`.
                    .map_err(|e| {
                        serde::de::Error::custom(format!("{MARK}{}{MARK}{e:#}", span.start))
                    })
            })
            .collect::<std::result::Result<_, _>>()
            .map(Self)
    }
}

/// A table's keys over the built-in service of the same name, if any.
fn resolve(name: String, raw: Raw, base: Option<&ServiceSettings>) -> Result<ServiceSettings> {
    let at = format!("services.{name}");
    check_name(&at, &name)?;
    check_column_names(&at, &raw)?;
    let kind = kind_of(&at, &name, &raw, base)?;
    // The built-in's image only while the service stays the same kind.
    let same_kind = base.is_some_and(|b| {
        matches!(
            (&b.kind, &kind),
            (ServiceKind::Model(_), ServiceKind::Model(_))
                | (ServiceKind::Crate { .. }, ServiceKind::Crate { .. })
        )
    });
    let image = match (&raw.image, base.filter(|_| same_kind), &kind) {
        (Some(i), _, _) => i.clone(),
        (None, Some(b), _) => b.image.clone(),
        // An ONNX model's image holds its file: an image of its own.
        (None, None, ServiceKind::Model(m)) if m.model == ModelName::Onnx => name.clone(),
        (None, None, ServiceKind::Model(_)) => "model-server".into(),
        (None, None, ServiceKind::Crate { package, .. }) => package.clone(),
    };
    let port = raw.port.or(base.map(|b| b.port)).ok_or_else(|| {
        anyhow::anyhow!("[{at}] needs a port: the port the service listens on, e.g. port = 5003")
    })?;
    if port == 0 {
        bail!("{at}.port must be 1-65535, not 0");
    }
    let replicas = raw.replicas.or(base.map(|b| b.replicas)).unwrap_or(1);
    if replicas == 0 {
        bail!("{at}.replicas must be at least 1 (teardown removes a service)");
    }
    if raw.seldon == Some(true) && matches!(kind, ServiceKind::Crate { .. }) {
        bail!(
            "{at}.seldon = true: only models of the model server speak Seldon's protocol; \
             deploy --seldon deploys models"
        );
    }
    if let Some(n) = &raw.seldon_name {
        names::dns1123_label(n).map_err(|why| anyhow::anyhow!("{at}.seldon_name = {n:?} {why}"))?;
    }
    if let Some(r) = &raw.resources {
        check_resources(&at, r)?;
    }
    check_env(&at, raw.env.iter().flat_map(BTreeMap::keys))?;
    Ok(ServiceSettings {
        seldon: raw
            .seldon
            .or(base.map(|b| b.seldon))
            .unwrap_or(matches!(kind, ServiceKind::Model(_))),
        seldon_name: raw
            .seldon_name
            .or(base.map(|b| b.seldon_name.clone()))
            .unwrap_or_else(|| format!("seldon-{name}")),
        name,
        kind,
        port,
        image,
        replicas,
        env: raw.env.or(base.map(|b| b.env.clone())).unwrap_or_default(),
        resources: raw
            .resources
            .or(base.map(|b| b.resources.clone()))
            .unwrap_or_default(),
        line: 0,
        file: None,
    })
}

/// A service's name names its Kubernetes Service: a DNS-1035 label.
fn check_name(at: &str, name: &str) -> Result<()> {
    names::dns1123_label(name).map_err(|why| anyhow::anyhow!("[{at}]: the name {why}"))?;
    // Kubernetes names Services with DNS-1035 labels: a letter first.
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        bail!(
            "[{at}]: the name must start with a letter (Kubernetes Service names are DNS-1035 labels)"
        );
    }
    Ok(())
}

/// `class_names` and `feature_names`: plain words, each once.
fn check_column_names(at: &str, raw: &Raw) -> Result<()> {
    for (key, names) in [
        ("class_names", &raw.class_names),
        ("feature_names", &raw.feature_names),
    ] {
        for (i, n) in names.iter().flatten().enumerate() {
            if n.trim().is_empty() || n.contains(',') {
                bail!(
                    "{at}.{key}: name {i} ({n:?}) is empty or holds a comma; names are plain words"
                );
            }
            if names.iter().flatten().take(i).any(|m| m == n) {
                bail!("{at}.{key}: {n:?} is there twice; each column needs its own name");
            }
        }
    }
    Ok(())
}

/// A model or a crate, from the table's keys over the built-in `base`'s.
fn kind_of(at: &str, name: &str, raw: &Raw, base: Option<&ServiceSettings>) -> Result<ServiceKind> {
    let base_kind = base.map(|b| &b.kind);
    let base_model = match base_kind {
        Some(ServiceKind::Model(m)) if raw.package.is_none() => Some(m.model),
        _ => None,
    };
    match (raw.model.or(base_model), &raw.package) {
        (Some(_), Some(_)) => {
            bail!("[{at}] has both `model` and `package`: a service is one or the other")
        }
        (Some(model), None) => {
            check_model_keys(at, name, model, raw)?;
            Ok(ServiceKind::Model(ModelSettings {
                model,
                model_path: raw.model_path.clone(),
                class_names: raw.class_names.clone(),
                feature_names: raw.feature_names.clone(),
                output: raw.output.clone(),
                contract: raw.contract.clone(),
                runtime: raw.runtime.unwrap_or_default(),
            }))
        }
        (None, package) => {
            let model_keys = raw.model_path.is_some()
                || raw.class_names.is_some()
                || raw.feature_names.is_some()
                || raw.output.is_some()
                || raw.contract.is_some()
                || raw.runtime.is_some();
            if model_keys {
                bail!(
                    "[{at}]: model_path, class_names, feature_names, output, contract and runtime \
                     are keys of models (`model = \"onnx\"`, iris or identity; runtime: onnx and \
                     iris), not of crates"
                );
            }
            let (base_package, base_bin, base_smoke) = match base_kind {
                Some(ServiceKind::Crate {
                    package,
                    bin,
                    smoke,
                }) => (Some(package.clone()), bin.clone(), smoke.clone()),
                _ => (None, None, None),
            };
            Ok(ServiceKind::Crate {
                package: package
                    .clone()
                    .or(base_package)
                    .unwrap_or_else(|| name.to_string()),
                bin: raw.bin.clone().or(base_bin),
                smoke: raw.smoke.clone().or(base_smoke),
            })
        }
    }
}

/// The keys a `model` service may have: crates' keys refused, and each
/// model's own.
fn check_model_keys(at: &str, name: &str, model: ModelName, raw: &Raw) -> Result<()> {
    if raw.bin.is_some() || raw.smoke.is_some() {
        bail!("[{at}]: `bin` and `smoke` are for crates; a model is checked with its `contract`");
    }
    if model == ModelName::Onnx && raw.model_path.is_none() {
        bail!(
            "{at}.model = \"onnx\" needs model_path, the .onnx file (relative to the \
             settings file); `cargo xtask model add {name} --onnx FILE` writes both"
        );
    }
    if model == ModelName::Identity
        && (raw.class_names.is_some() || raw.feature_names.is_some() || raw.output.is_some())
    {
        bail!(
            "{at}: class_names, feature_names and output are for iris and onnx; the \
             identity model returns what it is sent"
        );
    }
    if model == ModelName::Identity && raw.runtime.is_some() {
        bail!("{at}.runtime is for iris and onnx models; the identity model computes nothing");
    }
    if model != ModelName::Onnx && raw.model_path.is_some() {
        bail!(
            "{at}.model_path is only for model = \"onnx\"; {} is built into the server",
            model.as_str()
        );
    }
    Ok(())
}

/// Each quantity is one, and no request is above its limit.
fn check_resources(at: &str, r: &Resources) -> Result<()> {
    for (key, v) in [
        ("cpu_request", &r.cpu_request),
        ("memory_request", &r.memory_request),
        ("cpu_limit", &r.cpu_limit),
        ("memory_limit", &r.memory_limit),
    ] {
        quantity(v).map_err(|why| anyhow::anyhow!("{at}.resources.{key} = {v:?} {why}"))?;
    }
    for (request, limit, what) in [
        (&r.cpu_request, &r.cpu_limit, "cpu"),
        (&r.memory_request, &r.memory_limit, "memory"),
    ] {
        if quantity(request)? > quantity(limit)? {
            bail!(
                "{at}.resources: {what}_request {request:?} is above {what}_limit {limit:?}; \
                 Kubernetes refuses a request above its limit"
            );
        }
    }
    Ok(())
}

/// `env`'s names: variable names, none of those kube-mlops sets itself.
fn check_env<'a>(at: &str, keys: impl Iterator<Item = &'a String>) -> Result<()> {
    const OURS: [&str; 11] = [
        "PORT",
        "BIND_ADDR",
        "MODEL",
        "MODEL_NAME",
        "MODEL_PATH",
        "POD_IP",
        "CLASS_NAMES",
        "FEATURE_NAMES",
        "OUTPUT",
        "RUNTIME",
        "ORT_DYLIB_PATH",
    ];
    for key in keys {
        let ok = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            bail!("{at}.env: {key:?} is not an environment variable name (letters, digits, _)");
        }
        if OURS.contains(&key.as_str()) {
            bail!(
                "{at}.env sets {key}, which kube-mlops sets itself from the service's keys \
                 (port, model, model_path, class_names, feature_names, output, runtime and \
                 its library; MODEL_NAME is the service's name) and, for \
                 BIND_ADDR, from [local] bind (containers listen on every address)"
            );
        }
    }
    Ok(())
}

/// Brackets the byte offset of the table an error is about.
const MARK: char = '\u{1}';

/// A settings error as the reader needs it: the line of the service's table
/// when the error is about one, else toml's own report.
pub fn located(text: &str, e: toml::de::Error) -> anyhow::Error {
    let message = e.message();
    let found = message
        .strip_prefix(MARK)
        .and_then(|rest| rest.split_once(MARK))
        .and_then(|(offset, m)| Some((offset.parse::<usize>().ok()?, m)));
    match found {
        Some((offset, m)) => {
            let offset = offset.min(text.len());
            anyhow::anyhow!("line {}: {m}", text[..offset].matches('\n').count() + 1)
        }
        None => e.into(),
    }
}

/// Turns the byte offsets `deserialize` left in `line` into 1-based line
/// numbers of `text`.
pub fn line_numbers(services: &mut Services, text: &str) {
    for s in &mut services.0 {
        if s.line > 0 {
            let offset = (s.line - 1).min(text.len());
            s.line = text[..offset].matches('\n').count() + 1;
        }
    }
}

/// Checks across services: distinct ports.
pub fn check(services: &Services) -> Result<()> {
    let all = &services.0;
    if all.is_empty() {
        bail!("[services] declares no service; remove the table to deploy the built-in ones");
    }
    for (i, s) in all.iter().enumerate() {
        if let Some(other) = all[..i]
            .iter()
            .find(|o| o.image == s.image && !same_image(o, s))
        {
            bail!(
                "services.{}.image (line {}) is {:?}, as is services.{}.image, but they are \
                 built from different code or model files: give each its own image name",
                s.name,
                s.line,
                s.image,
                other.name
            );
        }
        if let Some(other) = all[..i]
            .iter()
            .find(|o| o.seldon && s.seldon && o.seldon_name == s.seldon_name)
        {
            bail!(
                "services.{} (line {}) and services.{} are both the SeldonDeployment {:?}: \
                 set seldon_name on one",
                s.name,
                s.line,
                other.name,
                s.seldon_name
            );
        }
        if let Some(other) = all[..i].iter().find(|o| o.port == s.port) {
            bail!(
                "services.{}.port (line {}) and services.{}.port are both {}: give each \
                 service its own port",
                s.name,
                s.line,
                other.name,
                s.port
            );
        }
    }
    Ok(())
}

/// Whether two services' images would hold the same files: the same crate
/// binary, or the model server with no model file of its own.
fn same_image(a: &ServiceSettings, b: &ServiceSettings) -> bool {
    match (&a.kind, &b.kind) {
        (ServiceKind::Model(x), ServiceKind::Model(y)) => x.model_path == y.model_path,
        (
            ServiceKind::Crate {
                package: p,
                bin: b1,
                ..
            },
            ServiceKind::Crate {
                package: q,
                bin: b2,
                ..
            },
        ) => p == q && b1 == b2,
        _ => false,
    }
}

/// A Kubernetes resource quantity as the settings take them: digits with an
/// optional fraction, then an optional suffix (`m` for CPU, `Ki`..`Ei` or
/// `k`..`E` for bytes), e.g. `50m`, `0.5`, `128Mi`.
fn quantity(s: &str) -> Result<f64> {
    const SUFFIXES: [&str; 14] = [
        "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let number_ok = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if number_ok && SUFFIXES.contains(&suffix) {
        let scale = match suffix {
            "m" => 1e-3,
            "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            "P" => 1e15,
            "E" => 1e18,
            "Ki" => 1024.0,
            "Mi" => 1024.0 * 1024.0,
            "Gi" => 1024.0 * 1024.0 * 1024.0,
            "Ti" => 1024f64.powi(4),
            "Pi" => 1024f64.powi(5),
            "Ei" => 1024f64.powi(6),
            _ => 1.0,
        };
        Ok(digits.parse::<f64>().unwrap_or(0.0) * scale)
    } else {
        bail!("is not a Kubernetes quantity: write e.g. \"50m\", \"0.5\" or \"128Mi\"")
    }
}
