//! The Kubernetes 1.32 OpenAPI schemas of the built-in kinds, strict
//! (unknown fields reported), as JSON Schema 2020-12: read at run time from
//! the `kubernetes-validate` Python package, which ships them
//! (`kubernetes_validate/kubernetes-json-schema/v1.32.0-local-strict/_definitions.json`).
//! `.ci/run` installs it and points `KMLOPS_KUBERNETES_SCHEMAS` at that
//! directory; without it only the API server's own rules ([`crate::rules`])
//! are checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use jsonschema::error::ValidationErrorKind;
use serde_json::{Value, json};

/// The environment variable naming the schema directory.
pub const SCHEMAS_ENV: &str = "KMLOPS_KUBERNETES_SCHEMAS";

/// One way an object breaks its kind's schema.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// A field the kind does not have: its path (`spec.replica`) and its
    /// JSON pointer (`/spec/replica`).
    Unknown { field: String, pointer: String },
    /// A required field is missing.
    Required(String),
    /// A value outside the field's enumeration.
    NotSupported {
        field: String,
        value: Value,
        options: Vec<String>,
    },
    /// A value of the wrong type, with the validator's words.
    Type { field: String, message: String },
}

struct Schemas {
    definitions: Value,
    /// `group/version/Kind` → definition name.
    by_gvk: HashMap<String, String>,
    compiled: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// Reads the schemas named by [`SCHEMAS_ENV`], once: `Ok(false)` when it is
/// unset (only the API server's own rules are checked then).
///
/// # Errors
/// The variable names no directory with a readable, parsable
/// `_definitions.json`: the message says which and how to fix it (a server
/// should refuse to start rather than fail every write).
pub fn load() -> Result<bool, String> {
    loaded()
        .as_ref()
        .map(Option::is_some)
        .map_err(String::clone)
}

fn loaded() -> &'static Result<Option<Schemas>, String> {
    static SCHEMAS: OnceLock<Result<Option<Schemas>, String>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let Some(dir) = std::env::var_os(SCHEMAS_ENV).map(PathBuf::from) else {
            return Ok(None);
        };
        let file = dir.join("_definitions.json");
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "{SCHEMAS_ENV}={}: cannot read {} ({e}): point it at the \
                 kubernetes-json-schema/v1.32.0-local-strict directory of the \
                 kubernetes-validate package, or unset it",
                dir.display(),
                file.display()
            )
        })?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{SCHEMAS_ENV}: {} is not JSON: {e}", file.display()))?;
        // The kinds the fake judges must be there, or nothing would be.
        if doc["$defs"].get("io.k8s.api.apps.v1.Deployment").is_none() {
            return Err(format!(
                "{SCHEMAS_ENV}: {} has no io.k8s.api.apps.v1.Deployment under $defs: it is \
                 not kubernetes-validate's v1.32.0-local-strict _definitions.json",
                file.display()
            ));
        }
        Ok(Some(Schemas::from(doc)))
    })
}

fn schemas() -> Option<&'static Schemas> {
    match loaded() {
        Ok(s) => s.as_ref(),
        // Said at start-up by a server (`load`); in-process callers learn
        // it at their first write.
        Err(e) => panic!("{e}"),
    }
}

impl Schemas {
    fn from(doc: Value) -> Self {
        let mut definitions = doc["$defs"].clone();
        // Seldon Core's CRD, written from its published facts, beside
        // the built-in kinds it embeds (ObjectMeta, PodSpec).
        definitions[crate::seldon_crd::DEFINITION] = crate::seldon_crd::schema();
        let mut by_gvk = HashMap::new();
        for (name, def) in definitions.as_object().into_iter().flatten() {
            for gvk in def["x-kubernetes-group-version-kind"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let key = gvk_key(
                    gvk["group"].as_str().unwrap_or_default(),
                    gvk["version"].as_str().unwrap_or_default(),
                    gvk["kind"].as_str().unwrap_or_default(),
                );
                by_gvk.insert(key, name.clone());
            }
        }
        Schemas {
            definitions,
            by_gvk,
            compiled: Mutex::new(HashMap::new()),
        }
    }
}

fn gvk_key(group: &str, version: &str, kind: &str) -> String {
    format!("{group}/{version}/{kind}")
}

/// The type information of a `group/version` `kind` for field ownership
/// and merging ([`crate::ssa`]): its definition in the schemas, or none (a
/// custom resource, whose lists are atomic as its CRD declares no list
/// types, or no schemas).
pub fn types(group: &str, version: &str, kind: &str) -> crate::ssa::Types<'static> {
    match schemas() {
        Some(s) if !group.ends_with("seldon.io") => {
            let node = s
                .by_gvk
                .get(&gvk_key(group, version, kind))
                .and_then(|name| s.definitions.get(name));
            crate::ssa::Types::new(Some(&s.definitions), node)
        }
        _ => crate::ssa::Types::new(None, None),
    }
}

/// Whether the schemas were found (`KMLOPS_KUBERNETES_SCHEMAS`).
pub fn available() -> bool {
    schemas().is_some()
}

/// The schema problems of `obj` as a `group/version` `kind`; empty when it
/// conforms, when the kind has no built-in schema, or without the schemas.
pub fn check(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<Problem> {
    let Some(validator) = validator(group, version, kind) else {
        return Vec::new();
    };
    let mut problems: Vec<Problem> = validator
        .iter_errors(obj)
        .flat_map(|e| problem(&e))
        .collect();
    problems.dedup();
    problems
}

fn validator(group: &str, version: &str, kind: &str) -> Option<Arc<jsonschema::Validator>> {
    let schemas = schemas()?;
    let key = gvk_key(group, version, kind);
    let name = schemas.by_gvk.get(&key)?;
    let mut compiled = schemas.compiled.lock().ok()?;
    if let Some(v) = compiled.get(&key) {
        return Some(v.clone());
    }
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/_definitions.json",
        "$defs": schemas.definitions,
        "$ref": format!("#/$defs/{name}"),
    });
    let v = Arc::new(
        jsonschema::options()
            .build(&schema)
            .unwrap_or_else(|e| panic!("the schema of {key} does not compile: {e}")),
    );
    compiled.insert(key, v.clone());
    Some(v)
}

fn problem(e: &jsonschema::ValidationError<'_>) -> Vec<Problem> {
    let at = field_path(e.instance_path().as_str());
    let join = |child: &str| {
        if at.is_empty() {
            child.to_string()
        } else {
            format!("{at}.{child}")
        }
    };
    match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let base = e.instance_path().as_str();
            unexpected
                .iter()
                .map(|u| Problem::Unknown {
                    field: join(u),
                    pointer: format!("{base}/{}", u.replace('~', "~0").replace('/', "~1")),
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            vec![Problem::Required(join(
                property.as_str().unwrap_or_default(),
            ))]
        }
        ValidationErrorKind::Enum { options } => vec![Problem::NotSupported {
            field: at,
            value: e.instance().clone().into_owned(),
            options: options
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        }],
        _ => vec![Problem::Type {
            field: at,
            message: e.to_string(),
        }],
    }
}

/// A JSON pointer (`/spec/containers/0/image`) as a Kubernetes field path
/// (`spec.containers[0].image`).
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_become_field_paths() {
        assert_eq!(
            field_path("/spec/template/spec/containers/0/image"),
            "spec.template.spec.containers[0].image"
        );
        assert_eq!(field_path(""), "");
    }
}
