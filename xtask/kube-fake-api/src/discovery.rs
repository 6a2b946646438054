//! What the fake serves, as a Kubernetes 1.32 API server describes it to
//! clients: `/version`, aggregated discovery (`/api` and `/apis` as
//! `APIGroupDiscoveryList`, when the client asks for it), the legacy
//! discovery documents (`/api`, `/apis`, `/api/v1`,
//! `/apis/<group>/<version>`) and the OpenAPI v3 index and
//! per-group-version documents. kubectl reads the last to learn that the
//! server validates fields itself (an operation's `fieldValidation`
//! parameter), so it sends `fieldValidation=Strict` instead of downloading
//! schemas to validate on the client.

use serde_json::{Value, json};

/// One resource the fake serves.
pub struct Served {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Subresources (`status`, `log`, `scale`).
    pub subresources: &'static [&'static str],
}

const fn served(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    subresources: &'static [&'static str],
) -> Served {
    Served {
        group,
        version: "v1",
        plural,
        kind,
        namespaced,
        subresources,
    }
}

/// The built-in resources the fake serves (every one is `v1` of its group).
pub const BUILT_IN: &[Served] = &[
    served("", "namespaces", "Namespace", false, &["status"]),
    served("", "pods", "Pod", true, &["log", "status", "portforward"]),
    served("", "services", "Service", true, &["status"]),
    served("", "events", "Event", true, &[]),
    served("", "configmaps", "ConfigMap", true, &[]),
    served("", "secrets", "Secret", true, &[]),
    served("", "serviceaccounts", "ServiceAccount", true, &[]),
    served(
        "apps",
        "deployments",
        "Deployment",
        true,
        &["status", "scale"],
    ),
    served(
        "apps",
        "replicasets",
        "ReplicaSet",
        true,
        &["status", "scale"],
    ),
    served(
        "networking.k8s.io",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &[],
    ),
    served(
        "policy",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["status"],
    ),
    // What `seldon install` binds the GKE account with.
    served(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    // Read-only: Seldon Core's CRD once it is installed (see `seldon_crd`).
    served(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["status"],
    ),
];

/// The short names kubectl accepts for a resource (`kubectl get crd`), as
/// a 1.32 server lists them.
fn short_names(plural: &str) -> &'static [&'static str] {
    match plural {
        "namespaces" => &["ns"],
        "pods" => &["po"],
        "services" => &["svc"],
        "events" => &["ev"],
        "configmaps" => &["cm"],
        "serviceaccounts" => &["sa"],
        "deployments" => &["deploy"],
        "replicasets" => &["rs"],
        "networkpolicies" => &["netpol"],
        "poddisruptionbudgets" => &["pdb"],
        "customresourcedefinitions" => &["crd", "crds"],
        "seldondeployments" => &["sdep"],
        _ => &[],
    }
}

/// Seldon Core's resource, served once Seldon Core is "installed".
pub const SELDON: Served = served(
    "machinelearning.seldon.io",
    "seldondeployments",
    "SeldonDeployment",
    true,
    &["status", "scale"],
);

/// Every resource served, Seldon's with `seldon`.
pub fn all(seldon: bool) -> impl Iterator<Item = &'static Served> {
    BUILT_IN.iter().chain(seldon.then_some(&SELDON))
}

/// The kind stored under `plural` in `group`.
pub fn kind_of(group: &str, plural: &str, seldon: bool) -> Option<&'static str> {
    all(seldon)
        .find(|s| s.group == group && s.plural == plural)
        .map(|s| s.kind)
}

/// Whether `plural` in `group` has the subresource `sub` (Seldon's counted
/// as installed: a path under it is judged only once the kind is known).
pub fn has_subresource(group: &str, plural: &str, sub: &str) -> bool {
    all(true).any(|s| s.group == group && s.plural == plural && s.subresources.contains(&sub))
}

/// `GET /version`.
pub fn version() -> Value {
    json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "kube-fake-api",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
        "compiler": "gc", "platform": "linux/amd64"})
}

/// `GET /api`: the core group's versions.
pub fn api_versions() -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]})
}

/// `GET /apis`: the named groups.
pub fn api_groups(seldon: bool) -> Value {
    let mut groups: Vec<&str> = all(seldon)
        .map(|s| s.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: its resources, or None
/// for a group version the fake does not serve.
pub fn resources(group: &str, version: &str, seldon: bool) -> Option<Value> {
    let mut resources = Vec::new();
    for s in all(seldon).filter(|s| s.group == group && s.version == version) {
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        resources.push(
            json!({"name": s.plural, "singularName": s.kind.to_lowercase(),
            "namespaced": s.namespaced, "kind": s.kind, "verbs": verbs,
            "shortNames": short_names(s.plural),
            // `kubectl get all`.
            "categories": if matches!(s.plural, "pods" | "services" | "deployments" | "replicasets") {
                json!(["all"])
            } else {
                json!([])
            }}),
        );
        for sub in s.subresources {
            let mut entry = json!({"name": format!("{}/{sub}", s.plural), "singularName": "",
                "namespaced": s.namespaced, "kind": s.kind, "verbs": ["get", "patch", "update"]});
            // A scale subresource speaks autoscaling/v1 Scale, as a real
            // server says (kubectl scale reads this).
            if *sub == "scale" {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
                entry["kind"] = json!("Scale");
            }
            resources.push(entry);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The media type of aggregated discovery (Kubernetes 1.30+,
/// `apidiscovery.k8s.io/v2`), which kubectl asks for first.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `GET /api` (`core`) or `GET /apis` in aggregated form: every group with
/// its versions, resources and subresources in one document, as
/// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` (KEP-3352), built from
/// the same facts as [`resources`].
pub fn aggregated(core: bool, seldon: bool) -> Value {
    let mut groups: Vec<&str> = all(seldon)
        .map(|s| s.group)
        .filter(|g| g.is_empty() == core)
        .collect();
    groups.dedup();
    let items: Vec<Value> = groups
        .into_iter()
        .map(|g| {
            let list = resources(g, "v1", seldon).unwrap_or_default();
            let entries = list["resources"].as_array().cloned().unwrap_or_default();
            let kind_of = |e: &Value| {
                json!({"group": e.get("group").and_then(Value::as_str).unwrap_or(g),
                    "version": e.get("version").and_then(Value::as_str).unwrap_or("v1"),
                    "kind": e["kind"]})
            };
            let resources: Vec<Value> = entries
                .iter()
                .filter(|e| !e["name"].as_str().unwrap_or_default().contains('/'))
                .map(|e| {
                    let name = e["name"].as_str().unwrap_or_default();
                    let subresources: Vec<Value> = entries
                        .iter()
                        .filter_map(|sub| {
                            let rest = sub["name"]
                                .as_str()?
                                .strip_prefix(name)?
                                .strip_prefix('/')?;
                            Some(json!({"subresource": rest, "responseKind": kind_of(sub),
                                "verbs": sub["verbs"]}))
                        })
                        .collect();
                    json!({"resource": name, "responseKind": kind_of(e),
                        "scope": if e["namespaced"] == true { "Namespaced" } else { "Cluster" },
                        "singularResource": e["singularName"], "verbs": e["verbs"],
                        "shortNames": e["shortNames"], "categories": e["categories"],
                        "subresources": subresources})
                })
                .collect();
            json!({"metadata": {"name": g, "creationTimestamp": null},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {}, "items": items})
}

/// The path of a group version under `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
fn openapi_path(s: &Served) -> String {
    if s.group.is_empty() {
        format!("api/{}", s.version)
    } else {
        format!("apis/{}/{}", s.group, s.version)
    }
}

/// `GET /openapi/v3`: the index of group-version documents.
pub fn openapi_index(seldon: bool) -> Value {
    let mut paths = serde_json::Map::new();
    for s in all(seldon) {
        let path = openapi_path(s);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash=kube-fake-api")}),
        );
    }
    json!({ "paths": paths })
}

/// `GET /openapi/v3/<path>`: each resource's operations with the group,
/// version and kind they act on and the query parameters the fake honours.
pub fn openapi_document(path: &str, seldon: bool) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    for s in all(seldon).filter(|s| openapi_path(s) == path) {
        let gvk = json!({"group": s.group, "version": s.version, "kind": s.kind});
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ]);
        let op = |action: &str| {
            json!({"operationId": format!("{action}{}", s.kind), "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk})
        };
        let base = format!("/{}", openapi_path(s));
        let (collection, item) = if s.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", s.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", s.plural),
            )
        } else {
            (
                format!("{base}/{}", s.plural),
                format!("{base}/{}/{{name}}", s.plural),
            )
        };
        paths.insert(collection, json!({"post": op("post"), "get": op("list")}));
        paths.insert(
            item,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({"openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths, "components": {"schemas": {}}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_group_has_its_resources_and_an_openapi_document() {
        for s in all(true) {
            let listed = resources(s.group, s.version, true).expect("listed");
            assert!(
                listed["resources"]
                    .as_array()
                    .expect("resources")
                    .iter()
                    .any(|r| r["name"] == s.plural),
                "{}",
                s.plural
            );
            let doc = openapi_document(&openapi_path(s), true).expect("document");
            assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
        }
        assert!(resources("machinelearning.seldon.io", "v1", false).is_none());
    }
}
