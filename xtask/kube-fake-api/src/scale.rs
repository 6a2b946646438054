//! The `scale` subresource of Deployments, ReplicaSets and SeldonDeployments
//! (autoscaling/v1 `Scale`), which `kubectl scale` and autoscalers write: reading it, and
//! writing `spec.replicas` through it, recorded as an `Update` by the
//! writer with subresource `scale` ([`crate::ssa::update`]), so that a
//! later apply of another replica count conflicts with it.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::status::{self, json_response};
use crate::writes::{self, Target};
use crate::{schema, ssa};

type Answer = Result<Response<Full<Bytes>>, crate::BoxError>;

/// A write's parts.
pub struct Write<'a> {
    pub method: &'a Method,
    pub query: &'a str,
    pub content_type: &'a str,
    pub user_agent: &'a str,
    pub body: &'a Bytes,
}

/// `GET`, `PUT` or `PATCH` of `…/{deployments|replicasets|seldondeployments}/{name}/scale`.
pub async fn route(inner: &kube::Client, path: &str, write: Write<'_>) -> Answer {
    let Some(target) = Target::parse(path) else {
        return Ok(status::not_found(
            "the server could not find the requested resource",
        ));
    };
    let name = target.name.clone().unwrap_or_default();
    let Some(parent) = writes::get(inner, target.object_path()).await else {
        return Ok(status::not_found(&format!(
            "{}.{} {name:?} not found",
            target.resource, target.group
        )));
    };
    let current = scale_of(&parent);
    let wanted = match write.method.as_str() {
        "GET" => return Ok(json_response(StatusCode::OK, &current)),
        "PUT" => serde_json::from_slice::<Value>(write.body).ok(),
        "PATCH" => serde_json::from_slice::<Value>(write.body)
            .ok()
            .and_then(|patch| {
                if write.content_type.contains("json-patch") {
                    let patch: json_patch::Patch = serde_json::from_value(patch).ok()?;
                    let mut v = current.clone();
                    json_patch::patch(&mut v, &patch).ok()?;
                    Some(v)
                } else {
                    let mut v = current.clone();
                    json_patch::merge(&mut v, &patch);
                    Some(v)
                }
            }),
        _ => {
            return Ok(status::method_not_allowed(
                "the scale subresource takes GET, PUT and PATCH",
            ));
        }
    };
    let Some(replicas) = wanted
        .as_ref()
        .and_then(|w| w["spec"]["replicas"].as_i64())
        .and_then(|r| i32::try_from(r).ok())
    else {
        return Ok(status::bad_request(
            "the Scale must set spec.replicas to a whole number, 0 or more",
        ));
    };
    if replicas < 0 {
        // As the API server's Scale validation words it.
        return Ok(status::invalid(
            "autoscaling",
            "Scale",
            &name,
            &[status::Cause::invalid(
                "spec.replicas",
                json!(replicas),
                "must be greater than or equal to 0",
            )],
        ));
    }
    // The same count again changes nothing: no write, no new generation.
    if current["spec"]["replicas"] == json!(replicas) {
        return Ok(json_response(StatusCode::OK, &current));
    }
    let mut updated = parent.clone();
    updated["spec"]["replicas"] = json!(replicas);
    let manager = writes::manager(write.query, write.user_agent);
    let types = schema::types(
        &target.group,
        &target.version,
        target.kind().unwrap_or_default(),
    );
    let updated = ssa::update(
        Some(&parent),
        updated,
        &manager,
        "scale",
        &target.api_version(),
        types,
    );
    // dryRun: answered as it would be, nothing stored.
    if writes::query_param(write.query, "dryRun") == Some("All") {
        return Ok(json_response(StatusCode::OK, &scale_of(&updated)));
    }
    let req = http::Request::builder()
        .method(Method::PUT)
        .uri(target.object_path())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(updated.to_string().into_bytes()))?;
    let resp = inner.send(req).await?;
    if !resp.status().is_success() {
        return Ok(status::internal("the scale could not be written"));
    }
    let stored = writes::get(inner, target.object_path())
        .await
        .unwrap_or(updated);
    Ok(json_response(StatusCode::OK, &scale_of(&stored)))
}

/// The `Scale` of a Deployment, a ReplicaSet or a SeldonDeployment (whose
/// CRD names `.spec.replicas` and `.status.replicas` and no selector).
fn scale_of(parent: &Value) -> Value {
    let meta = &parent["metadata"];
    let selector: Vec<String> = parent["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"]},
        "spec": {"replicas": parent["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": parent["status"]["replicas"].as_i64().unwrap_or(0),
            "selector": selector.join(",")}})
}
