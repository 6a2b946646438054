//! Every write passes here before kube-fake-client stores it, and is
//! refused as the API server refuses it: a body for another kind (400), a
//! namespace that does not exist (404), an object that does not decode
//! (400; server-side apply's typed-patch errors are a reasonless 500, as
//! kubernetes/kubernetes#122480 records), one that breaks its schema or its
//! kind's rules (422 Invalid), a pod its namespace's Pod Security level
//! forbids (403), an apply without a field manager (422), a subresource the
//! kind does not have (404). `dryRun=All` writes (in the query, or a
//! DeleteOptions body) are answered and never stored; an apply that
//! changes nothing is not written (no new generation); a write through
//! `/status` changes only the status, and is validated like any other; a
//! write that sets `managedFields` replaces them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::status::{self, Cause};
use crate::{admission, defaults, rules, schema, ssa};

/// What becomes of a write.
pub(crate) enum Verdict {
    /// Not a write the fake judges: send the request on as it is.
    Forward { body: Bytes },
    /// Store `object` as it stands (the merge done and `managedFields`
    /// kept here, [`ssa`]): created at `collection` (POST), or replacing
    /// what is at the request's path (PUT); these `Warning` header values
    /// go with the answer.
    Store {
        object: Value,
        collection: Option<String>,
        warnings: Vec<String>,
        /// Whether more than metadata changed (the API server bumps
        /// `metadata.generation` only then).
        spec_changed: bool,
    },
    /// Answer with this, storing nothing.
    Answer(Response<Full<Bytes>>),
}

/// The parts of a resource path: `/apis/apps/v1/namespaces/ns/deployments/x/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl Target {
    pub fn parse(path: &str) -> Option<Self> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match parts.as_slice() {
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            rest => (None, rest),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (*resource, None, None),
            [resource, name] => (*resource, Some(name.to_string()), None),
            [resource, name, sub] => (*resource, Some(name.to_string()), Some(sub.to_string())),
            _ => return None,
        };
        Some(Self {
            group: group.into(),
            version: version.into(),
            resource: resource.into(),
            namespace,
            name,
            subresource,
        })
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind stored under this resource, for the resources the fake serves.
    pub fn kind(&self) -> Option<&'static str> {
        crate::discovery::kind_of(&self.group, &self.resource, true)
    }

    /// The collection the object is in (`…/namespaces/ns/deployments`).
    fn collection_path(&self) -> String {
        let path = self.object_path();
        path.rsplit_once('/')
            .map_or(path.clone(), |(c, _)| c.to_string())
    }

    /// The object's own path (no subresource).
    pub fn object_path(&self) -> String {
        let prefix = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        let ns = self
            .namespace
            .as_ref()
            .map(|n| format!("/namespaces/{n}"))
            .unwrap_or_default();
        format!(
            "{prefix}{ns}/{}/{}",
            self.resource,
            self.name.clone().unwrap_or_default()
        )
    }
}

/// The kinds stored with a status subresource, through which a
/// metadata-only change is written without a new generation.
const STATUS_SUBRESOURCE: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "Service",
    "Pod",
    "SeldonDeployment",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verb {
    Create,
    Update,
    Apply,
    MergePatch,
    JsonPatch,
    StrategicPatch,
}

/// The field manager of a write: `fieldManager`, else what the API server
/// derives from the client's User-Agent (its part before the first `/`).
pub(crate) fn manager(query: &str, user_agent: &str) -> String {
    match query_param(query, "fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => user_agent
            .split('/')
            .next()
            .filter(|p| !p.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    }
}

/// The annotation client-side `kubectl apply` keeps its configuration in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// After a server-side apply by kubectl to an object client-side apply
/// made, its last-applied annotation says what was just applied (the API
/// server's lastAppliedUpdater): a later client-side apply then removes
/// only what kubectl applied, never another manager's fields.
fn last_applied_updated(
    mut applied: Value,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
) -> Value {
    let had = live.is_some_and(|l| l["metadata"]["annotations"].get(LAST_APPLIED).is_some());
    if manager != "kubectl" || !had {
        return applied;
    }
    let mut last = config.clone();
    if let Some(a) = last["metadata"]["annotations"].as_object_mut() {
        a.remove(LAST_APPLIED);
        if a.is_empty()
            && let Some(m) = last["metadata"].as_object_mut()
        {
            m.remove("annotations");
        }
    }
    applied["metadata"]["annotations"][LAST_APPLIED] = json!(last.to_string());
    applied
}

/// Whether a write is a dry run: `dryRun=All` in the query, or (a DELETE,
/// as kubectl sends it) `"dryRun": ["All"]` in its DeleteOptions body.
pub(crate) fn dry_run(query: &str, body: &[u8]) -> bool {
    query_param(query, "dryRun") == Some("All")
        || serde_json::from_slice::<Value>(body).is_ok_and(|options| {
            options["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"))
        })
}

/// A query parameter's value, percent-decoded enough for the values the
/// API uses (`dryRun=All`, `fieldValidation=Strict`, `fieldManager=…`).
pub(crate) fn query_param<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// Judge one request. `lookup` reads the stored object at a path (None if
/// absent); `namespaces` are the namespaces that exist, with their objects.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn admit<F, Fut>(
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    user_agent: &str,
    body: Bytes,
    namespaces: &Mutex<BTreeMap<String, Value>>,
    lookup: F,
) -> Verdict
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let forward = |body: Bytes| Verdict::Forward { body };
    let Some(target) = Target::parse(path) else {
        return forward(body);
    };
    let Some(kind) = target.kind() else {
        return forward(body);
    };
    // A subresource the kind does not have is not there; `status` writes
    // are judged here (only the status is written, and it must be valid);
    // the others (log, portforward, scale) are served elsewhere.
    let status_write = match target.subresource.as_deref() {
        None => false,
        Some(sub) if !crate::discovery::has_subresource(&target.group, &target.resource, sub) => {
            return Verdict::Answer(status::not_found(
                "the server could not find the requested resource",
            ));
        }
        Some("status") if method != Method::GET => true,
        Some(_) => return forward(body),
    };
    if status_write && *method == Method::POST {
        return Verdict::Answer(status::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let dry_run = dry_run(query, &body);
    let verb = match method.as_str() {
        "POST" => Verb::Create,
        "PUT" => Verb::Update,
        "PATCH" if content_type.contains("apply-patch") => Verb::Apply,
        "PATCH" if content_type.contains("json-patch") => Verb::JsonPatch,
        "PATCH" if content_type.contains("strategic-merge-patch") => Verb::StrategicPatch,
        "PATCH" if content_type.contains("merge-patch") => Verb::MergePatch,
        "PATCH" => {
            return Verdict::Answer(status::unsupported_media_type(&format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            )));
        }
        "DELETE" if dry_run => {
            return Verdict::Answer(match lookup(target.object_path()).await {
                Some(obj) => status::json_response(StatusCode::OK, &obj),
                None => not_found(&target),
            });
        }
        _ => return forward(body),
    };
    let parsed = match serde_json::from_slice(&body) {
        // YAML (application/yaml, an apply patch written as YAML) is
        // JSON's superset.
        Err(_) if content_type.contains("yaml") => {
            serde_yaml_ng::from_slice(&body).map_err(|e| e.to_string())
        }
        other => other.map_err(|e| e.to_string()),
    };
    let mut patch: Value = match parsed {
        Ok(v) => v,
        Err(e) => {
            return Verdict::Answer(status::bad_request(&format!(
                "the request body is not JSON: {e}"
            )));
        }
    };
    if let Some(ns) = &target.namespace
        && !namespaces
            .lock()
            .map(|n| n.contains_key(ns))
            .unwrap_or(false)
    {
        return Verdict::Answer(status::not_found(&format!("namespaces {ns:?} not found")));
    }
    // generateName: the server picks the rest of the name.
    if verb == Verb::Create
        && patch["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && let Some(prefix) = patch["metadata"]["generateName"].as_str()
    {
        let name = format!("{prefix}{}", generated_suffix());
        patch["metadata"]["name"] = json!(name);
    }
    if let Some(refusal) = wrong_object(&target, kind, verb, &patch) {
        return Verdict::Answer(status::bad_request(&refusal));
    }
    let existing = match (verb, &target.name) {
        (Verb::Create, _) | (_, None) => None,
        _ => lookup(target.object_path()).await,
    };
    // The NamespaceLifecycle admission plugin: nothing new in a namespace
    // that is going away.
    if existing.is_none()
        && let Some(ns) = &target.namespace
        && namespaces.lock().is_ok_and(|n| {
            n.get(ns)
                .is_some_and(|o| o["metadata"].get("deletionTimestamp").is_some())
        })
    {
        let name = patch["metadata"]["name"]
            .as_str()
            .or(target.name.as_deref())
            .unwrap_or_default()
            .to_string();
        return Verdict::Answer(status::forbidden(
            &format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                target.resource
            ),
            &target.resource,
            &name,
        ));
    }
    let types = schema::types(&target.group, &target.version, kind);
    // An apply must name its manager (the API server's PatchOptions rule).
    if verb == Verb::Apply && query_param(query, "fieldManager").is_none_or(str::is_empty) {
        return Verdict::Answer(status::invalid(
            "meta.k8s.io",
            "PatchOptions",
            "",
            &[Cause::required(
                "fieldManager",
                "is required for apply patch",
            )],
        ));
    }
    let manager = manager(query, user_agent);
    let mut candidate = match (verb, &existing) {
        (Verb::Create | Verb::Update, _) => patch.clone(),
        (Verb::MergePatch | Verb::JsonPatch | Verb::StrategicPatch, None) => return forward(body),
        (Verb::Apply, _) => {
            let mut config = patch.clone();
            fill_identity(&mut config, &target, kind);
            defaults::keys(kind, &mut config);
            let force = query_param(query, "force") == Some("true");
            match ssa::apply(
                existing.as_ref(),
                &config,
                &manager,
                force,
                &target.api_version(),
                types,
            ) {
                Ok(applied) => last_applied_updated(applied, existing.as_ref(), &config, &manager),
                Err(conflicts) => {
                    return Verdict::Answer(status::conflict(
                        &conflicts.message(),
                        &target.resource,
                        target.name.as_deref().unwrap_or_default(),
                        conflicts.causes(),
                    ));
                }
            }
        }
        (Verb::MergePatch, Some(old)) => {
            let mut merged = old.clone();
            json_patch::merge(&mut merged, &patch);
            merged
        }
        (Verb::StrategicPatch, Some(old)) => ssa::strategic_merge(old, &patch, types),
        (Verb::JsonPatch, Some(old)) => {
            let mut patched = old.clone();
            match serde_json::from_value::<json_patch::Patch>(patch.clone())
                .map_err(|e| e.to_string())
                .and_then(|p| json_patch::patch(&mut patched, &p).map_err(|e| e.to_string()))
            {
                Ok(()) => patched,
                Err(e) => {
                    return Verdict::Answer(status::json_response(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": e, "reason": "Invalid", "code": 422}),
                    ));
                }
            }
        }
    };
    fill_identity(&mut candidate, &target, kind);
    // Through `/status` only the status changes; the rest stays as it was.
    if status_write && let Some(old) = &existing {
        let mut kept = old.clone();
        kept["status"] = candidate["status"].take();
        if kept["status"].is_null()
            && let Some(m) = kept.as_object_mut()
        {
            m.remove("status");
        }
        candidate = kept;
    }
    defaults::apply(kind, &mut candidate);
    let name = candidate["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let mut causes = Vec::new();
    let mut warnings = Vec::new();
    let mut unknown = Vec::new();
    for problem in schema::check(&target.group, &target.version, kind, &candidate) {
        match problem {
            schema::Problem::Unknown { field, pointer } => unknown.push((field, pointer)),
            schema::Problem::Required(field) => causes.push(Cause::required(field, "")),
            schema::Problem::NotSupported {
                field,
                value,
                options,
            } => {
                let options: Vec<&str> = options.iter().map(String::as_str).collect();
                causes.push(Cause::not_supported(field, value, &options));
            }
            schema::Problem::Type { field, message } => {
                return Verdict::Answer(if verb == Verb::Apply {
                    typed_patch_failure(&target, kind, &name, &format!(".{field}: {message}"))
                } else {
                    status::bad_request(&format!(
                        "{kind} in version {:?} cannot be handled as a {kind}: {field}: {message}",
                        target.version
                    ))
                });
            }
        }
    }
    if !unknown.is_empty() {
        let fields: Vec<&str> = unknown.iter().map(|(f, _)| f.as_str()).collect();
        if verb == Verb::Apply {
            let listed: Vec<String> = fields
                .iter()
                .map(|f| format!(".{f}: field not declared in schema"))
                .collect();
            return Verdict::Answer(typed_patch_failure(
                &target,
                kind,
                &name,
                &listed.join(", "),
            ));
        }
        match query_param(query, "fieldValidation") {
            Some("Strict") => {
                let listed: Vec<String> = fields
                    .iter()
                    .map(|f| format!("unknown field {f:?}"))
                    .collect();
                return Verdict::Answer(status::bad_request(&format!(
                    "strict decoding error: {}",
                    listed.join(", ")
                )));
            }
            Some("Ignore") => {}
            _ => warnings.extend(fields.iter().map(|f| format!("unknown field {f:?}"))),
        }
        // Pruned, as the API server drops what it cannot decode.
        for (_, pointer) in &unknown {
            remove_at(&mut candidate, pointer);
            remove_at(&mut patch, pointer);
        }
    }
    match rules::validate(kind, &candidate, existing.as_ref()) {
        Ok(()) => {}
        Err(rules::Refusal::BadRequest(message)) => {
            return Verdict::Answer(status::bad_request(&message));
        }
        Err(rules::Refusal::Invalid(more)) => causes.extend(more),
    }
    // The schema and the rules may both find a missing field: say it once.
    let mut seen = Vec::new();
    causes.retain(|c| {
        let key = (c.field.clone(), c.kind);
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    if !causes.is_empty() {
        return Verdict::Answer(status::invalid(&target.group, kind, &name, &causes));
    }
    if kind == "Pod" && existing.is_none() {
        let namespace = target.namespace.clone().unwrap_or_default();
        let level = namespaces.lock().ok().and_then(|n| {
            n.get(&namespace)
                .and_then(admission::enforced_level)
                .map(str::to_string)
        });
        if let Some(level) = level
            && let Some(message) = admission::check_pod(&level, &name, &candidate["spec"])
        {
            return Verdict::Answer(status::forbidden(&message, "pods", &name));
        }
    }
    if verb != Verb::Apply {
        // A write that sets `managedFields` replaces them (`[{}]` clears
        // them: kubectl's move from client-side to server-side apply);
        // then the writer takes what it changed.
        let base = match (&existing, candidate["metadata"].get("managedFields")) {
            (Some(old), Some(given)) if old["metadata"].get("managedFields") != Some(given) => {
                let mut base = old.clone();
                let entries: Vec<Value> = given
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|e| e.as_object().is_some_and(|o| !o.is_empty()))
                    .cloned()
                    .collect();
                base["metadata"]["managedFields"] = Value::Array(entries);
                Some(base)
            }
            _ => existing.clone(),
        };
        candidate = ssa::update(
            base.as_ref(),
            candidate,
            &manager,
            if status_write { "status" } else { "" },
            &target.api_version(),
            types,
        );
    }
    if dry_run {
        let code = if existing.is_none() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Verdict::Answer(status::json_response(code, &candidate));
    }
    if verb == Verb::Apply
        && let Some(old) = &existing
        && unchanged(old, &candidate, &manager)
    {
        return Verdict::Answer(status::json_response(StatusCode::OK, old));
    }
    let spec_changed = existing.as_ref().is_none_or(|old| {
        old.get("spec") != candidate.get("spec") || !STATUS_SUBRESOURCE.contains(&kind)
    });
    Verdict::Store {
        object: candidate,
        collection: existing.is_none().then(|| target.collection_path()),
        warnings,
        spec_changed,
    }
}

fn not_found(target: &Target) -> Response<Full<Bytes>> {
    let what = if target.group.is_empty() {
        target.resource.clone()
    } else {
        format!("{}.{}", target.resource, target.group)
    };
    status::not_found(&format!(
        "{what} {:?} not found",
        target.name.clone().unwrap_or_default()
    ))
}

/// A body that names another kind, version, name or namespace than the URL.
fn wrong_object(target: &Target, kind: &str, verb: Verb, body: &Value) -> Option<String> {
    if matches!(verb, Verb::MergePatch | Verb::JsonPatch) {
        return None;
    }
    let expected = target.api_version();
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let body_kind = body["kind"].as_str().unwrap_or_default();
    if verb == Verb::Apply {
        if api_version != expected {
            return Some(format!(
                "Incorrect version specified in apply patch. Specified patch version: \
                 {api_version}, expected: {expected}"
            ));
        }
        if body_kind != kind {
            return Some(format!(
                "Incorrect kind specified in apply patch. Specified patch kind: {body_kind}, \
                 expected: {kind}"
            ));
        }
    } else {
        if !api_version.is_empty() && api_version != expected {
            return Some(format!(
                "the API version in the data ({api_version}) does not match the expected API \
                 version ({expected})"
            ));
        }
        if !body_kind.is_empty() && body_kind != kind {
            return Some(format!(
                "the kind in the data ({body_kind}) does not match the expected kind ({kind})"
            ));
        }
    }
    let body_name = body["metadata"]["name"].as_str();
    if let (Some(url), Some(named)) = (&target.name, body_name)
        && url != named
    {
        return Some(format!(
            "the name of the object ({named}) does not match the name on the URL ({url})"
        ));
    }
    let body_ns = body["metadata"]["namespace"].as_str();
    if let (Some(url), Some(named)) = (&target.namespace, body_ns)
        && url != named
    {
        return Some(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        );
    }
    None
}

/// Five characters for a generated name, from apimachinery's alphabet.
fn generated_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let x = u64::from(nanos) ^ NEXT.fetch_add(0x9e37_79b9, Ordering::Relaxed);
    crate::controllers::deployments::safe_encode(x, 5)
}

/// What the server sets from the URL: apiVersion, kind, name, namespace.
fn fill_identity(obj: &mut Value, target: &Target, kind: &str) {
    if !obj.is_object() {
        return;
    }
    obj["apiVersion"] = json!(target.api_version());
    obj["kind"] = json!(kind);
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if let Some(name) = &target.name {
        obj["metadata"]["name"] = json!(name);
    }
    if let Some(ns) = &target.namespace {
        obj["metadata"]["namespace"] = json!(ns);
    }
}

/// Server-side apply's answer to a patch its schema cannot type: a 500
/// without a reason (kubernetes/kubernetes#122480, still so in 1.32).
fn typed_patch_failure(
    target: &Target,
    kind: &str,
    name: &str,
    what: &str,
) -> Response<Full<Bytes>> {
    let ns = target.namespace.clone().unwrap_or_default();
    let gv = if target.group.is_empty() {
        format!("/{}", target.version)
    } else {
        target.api_version()
    };
    status::internal(&format!(
        "failed to create typed patch object ({ns}/{name}; {gv}, Kind={kind}): {what}"
    ))
}

/// An apply that leaves the object as it is, by a manager that already owns
/// fields of it: the API server writes nothing (no new resourceVersion or
/// generation).
fn unchanged(old: &Value, candidate: &Value, manager: &str) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v["metadata"].as_object_mut() {
            for key in [
                "managedFields",
                "resourceVersion",
                "generation",
                "uid",
                "creationTimestamp",
            ] {
                meta.remove(key);
            }
        }
        v
    };
    let owns = old["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| {
            m["manager"].as_str() == Some(manager) && m["operation"].as_str() == Some("Apply")
        });
    owns && strip(old) == strip(candidate)
}

/// Remove the member at a JSON pointer, if there.
fn remove_at(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
        m.remove(&last);
    }
}

/// Read a stored object through the store's own HTTP interface.
pub(crate) async fn get(inner: &kube::Client, path: String) -> Option<Value> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .body(kube::client::Body::empty())
        .ok()?;
    let resp = inner.send(req).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_into_their_parts() {
        let t = Target::parse("/apis/apps/v1/namespaces/ns/deployments/x/status").expect("parse");
        assert_eq!(
            (t.group.as_str(), t.version.as_str(), t.resource.as_str()),
            ("apps", "v1", "deployments")
        );
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(t.name.as_deref(), Some("x"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        assert_eq!(t.object_path(), "/apis/apps/v1/namespaces/ns/deployments/x");
        let core = Target::parse("/api/v1/namespaces/ns/services").expect("parse");
        assert_eq!((core.kind(), core.name), (Some("Service"), None));
    }

    #[test]
    fn remove_at_prunes_one_member() {
        let mut v = json!({"spec": {"a": 1, "b/c": 2}});
        remove_at(&mut v, "/spec/b~1c");
        assert_eq!(v, json!({"spec": {"a": 1}}));
    }
}
