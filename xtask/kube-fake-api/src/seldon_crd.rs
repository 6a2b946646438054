//! Seldon Core's SeldonDeployment CRD as the fake serves it: the
//! structural schema of the fields kube-mlops and Seldon's examples use,
//! written from the facts of Seldon Core 1.18.2's published CRD
//! (`operator/config/crd/bases/machinelearning.seldon.io_seldondeployments.yaml`
//! in SeldonIO/seldon-core at tag v1.18.2), not copied from it:
//!
//! - group `machinelearning.seldon.io`, kind `SeldonDeployment`, plural
//!   `seldondeployments`, short name `sdep`, namespaced; `v1` served and
//!   stored (v1alpha2 and v1alpha3 served too, not modelled here), with
//!   the `status` and `scale` subresources (`.spec.replicas`,
//!   `.status.replicas`);
//! - `spec.predictors` required; a predictor requires `name` and `graph`;
//!   a graph node requires `name`; a graph parameter requires `name`,
//!   `type` and `value`;
//! - a component spec's `spec` is a whole PodSpec (checked here against
//!   Kubernetes' own, which the CRD embeds) and its `hpaSpec`, `kedaSpec`
//!   and `pdbSpec`, like a predictor's `engineResources`, `svcOrchSpec`,
//!   `explainer` and `ssl`, are objects whose insides are not modelled;
//! - integers are `int32` where the CRD says so (`replicas`, `traffic`,
//!   ports); `status.state` and `status.description` are strings,
//!   `status.deploymentStatus` maps names to replica counts.
//!
//! controller-gen wrote no `x-kubernetes-list-type` in that CRD, so its
//! lists are atomic for server-side apply, as [`crate::ssa`] treats every
//! custom resource's lists.

use serde_json::{Value, json};

/// The name of the schema definition this module adds beside Kubernetes'.
pub const DEFINITION: &str = "io.seldon.machinelearning.v1.SeldonDeployment";

/// The CRD's name.
pub const NAME: &str = "seldondeployments.machinelearning.seldon.io";

/// A closed object: these properties, nothing else (the strict form the
/// fake validates with, so unknown fields are reported as for built-ins).
fn object(properties: Value, required: &[&str]) -> Value {
    let mut o = json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn open_object() -> Value {
    json!({"type": "object"})
}

fn int32() -> Value {
    json!({"type": "integer", "format": "int32", "minimum": -2147483648_i64, "maximum": 2147483647})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

/// The graph of a predictor: a tree of units (children are not typed
/// further by the CRD: `items: {}`).
fn graph() -> Value {
    object(
        json!({
            "name": {"type": "string"},
            "type": {"type": "string"},
            "implementation": {"type": "string"},
            "methods": {"type": "array", "items": {"type": "string"}},
            "modelUri": {"type": "string"},
            "serviceAccountName": {"type": "string"},
            "envSecretRefName": {"type": "string"},
            "storageInitializerImage": {"type": "string"},
            "children": {"type": "array", "items": {}},
            "endpoint": object(json!({
                "service_host": {"type": "string"},
                "service_port": int32(),
                "type": {"type": "string"},
                "httpPort": int32(),
                "grpcPort": int32(),
            }), &[]),
            "parameters": {"type": "array", "items": object(json!({
                "name": {"type": "string"},
                "type": {"type": "string"},
                "value": {"type": "string"},
            }), &["name", "type", "value"])},
            "logger": object(json!({"mode": {"type": "string"}, "url": {"type": "string"}}), &[]),
        }),
        &["name"],
    )
}

/// The JSON schema of a SeldonDeployment, `$ref`ing Kubernetes' ObjectMeta
/// and PodSpec among `$defs`.
pub fn schema() -> Value {
    let component = object(
        json!({
            "metadata": open_object(),
            "spec": {"$ref": "#/$defs/io.k8s.api.core.v1.PodSpec"},
            "hpaSpec": open_object(),
            "kedaSpec": open_object(),
            "pdbSpec": open_object(),
            "replicas": int32(),
        }),
        &[],
    );
    let predictor = object(
        json!({
            "name": {"type": "string"},
            "graph": graph(),
            "componentSpecs": {"type": "array", "items": component},
            "replicas": int32(),
            "traffic": int32(),
            "shadow": {"type": "boolean"},
            "progressDeadlineSeconds": int32(),
            "labels": string_map(),
            "annotations": string_map(),
            "engineResources": open_object(),
            "svcOrchSpec": open_object(),
            "explainer": open_object(),
            "ssl": open_object(),
        }),
        &["name", "graph"],
    );
    let spec = object(
        json!({
            "name": {"type": "string"},
            "annotations": string_map(),
            "protocol": {"type": "string"},
            "transport": {"type": "string"},
            "serverType": {"type": "string"},
            "replicas": int32(),
            "oauth_key": {"type": "string"},
            "oauth_secret": {"type": "string"},
            "predictors": {"type": "array", "items": predictor},
        }),
        &["predictors"],
    );
    let status = object(
        json!({
            "state": {"type": "string"},
            "description": {"type": "string"},
            "replicas": int32(),
            "observedGeneration": {"type": "integer"},
            "address": open_object(),
            "annotations": string_map(),
            "conditions": {"type": "array", "items": open_object()},
            "serviceStatus": open_object(),
            "deploymentStatus": {"type": "object", "additionalProperties": object(json!({
                "name": {"type": "string"},
                "status": {"type": "string"},
                "description": {"type": "string"},
                "explainerFor": {"type": "string"},
                "replicas": int32(),
                "availableReplicas": int32(),
            }), &[])},
        }),
        &[],
    );
    let mut root = object(
        json!({
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": spec,
            "status": status,
        }),
        &[],
    );
    root["x-kubernetes-group-version-kind"] = json!([{"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment"}]);
    root
}

/// The CustomResourceDefinition object `kubectl get crd` shows, Established.
/// (A CRD's schema cannot `$ref`: the PodSpec shows as an open object.)
pub fn definition() -> Value {
    let mut shown = schema();
    shown["properties"]["metadata"] = json!({"type": "object"});
    shown
        .as_object_mut()
        .map(|o| o.remove("x-kubernetes-group-version-kind"));
    strip_refs(&mut shown);
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": NAME, "uid": "00000000-0000-4000-8000-5e1d0c0e0001",
            "resourceVersion": "1", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"controller-gen.kubebuilder.io/version": "v0.9.2"}},
        "spec": {"group": "machinelearning.seldon.io",
            "names": {"kind": "SeldonDeployment", "listKind": "SeldonDeploymentList",
                "plural": "seldondeployments", "singular": "seldondeployment", "shortNames": ["sdep"]},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": shown},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas"}}}]},
        "status": {"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted"}],
            "acceptedNames": {"kind": "SeldonDeployment", "listKind": "SeldonDeploymentList",
                "plural": "seldondeployments", "singular": "seldondeployment", "shortNames": ["sdep"]},
            "storedVersions": ["v1"]}})
}

fn strip_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.remove("$ref").is_some() {
                m.insert("type".into(), json!("object"));
                m.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            }
            // A structural schema says nothing of closed objects.
            if m.get("additionalProperties").is_some_and(Value::is_boolean) {
                m.remove("additionalProperties");
            }
            for child in m.values_mut() {
                strip_refs(child);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(strip_refs),
        _ => {}
    }
}
