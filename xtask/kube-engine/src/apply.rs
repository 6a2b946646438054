//! Server-side apply of any object under one field manager, reporting what
//! changed the way `kubectl apply` does.

use anyhow::{Context, Result, bail};
use kube::Error;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::Value;

use crate::manifest::{self, display};
use crate::resolve::Resolver;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Configured => "configured",
            Self::Unchanged => "unchanged",
        })
    }
}

/// One applied object as the server returned it.
#[derive(Clone, Debug)]
pub struct Applied {
    pub object: DynamicObject,
    pub outcome: Outcome,
    /// With `force_conflicts`: the conflicts it overrode, as the API server
    /// listed them (whose fields it took).
    pub taken_over: Option<String>,
}

pub struct ApplyOptions<'a> {
    pub field_manager: &'a str,
    /// Take over fields another manager owns instead of failing on the conflict.
    pub force_conflicts: bool,
    /// Namespace for namespaced objects that name none.
    pub default_namespace: &'a str,
}

/// Apply every object in order (see [`manifest::order`]).
pub async fn apply_all(
    resolver: &mut Resolver,
    mut objects: Vec<DynamicObject>,
    opts: &ApplyOptions<'_>,
) -> Result<Vec<Applied>> {
    manifest::order(&mut objects);
    let mut applied = Vec::with_capacity(objects.len());
    for obj in objects {
        let one = apply_one(resolver, obj, opts).await?;
        println!("{} {}", display(&one.object), one.outcome);
        if let Some(taken) = &one.taken_over {
            println!("  took over fields from another manager: {taken}");
        }
        applied.push(one);
    }
    Ok(applied)
}

async fn apply_one(
    resolver: &mut Resolver,
    obj: DynamicObject,
    opts: &ApplyOptions<'_>,
) -> Result<Applied> {
    let what = display(&obj);
    let api = resolver.api_for(&obj, opts.default_namespace).await?;
    let name = obj.metadata.name.clone().unwrap_or_default();
    let before = api
        .get_opt(&name)
        .await
        .with_context(|| format!("reading {what}"))?;
    let params = PatchParams::apply(opts.field_manager);
    let mut taken_over = None;
    let after = match api.patch(&name, &params, &Patch::Apply(&obj)).await {
        Ok(after) => after,
        // Forced only after the conflict, so that it can say whose fields it takes.
        Err(Error::Api(status)) if status.code == 409 && opts.force_conflicts => {
            taken_over = Some(conflicts(&status.message).to_string());
            api.patch(&name, &params.clone().force(), &Patch::Apply(&obj))
                .await
                .with_context(|| format!("applying {what} with --force-conflicts"))?
        }
        Err(Error::Api(status)) if status.code == 409 => bail!(
            "applying {what}: {}\nAnother field manager set these fields since the last deploy \
             (`kubectl scale`, `kubectl edit`, another apply). Re-run the deploy with \
             --force-conflicts to take them back (it names whose fields it takes), or drop \
             them from the manifest to leave them to that manager.",
            status.message
        ),
        // Server-side apply answers a field its schema lacks with a bare 500
        // (kubernetes/kubernetes#122480): say what it means.
        Err(Error::Api(status)) if status.message.contains("field not declared in schema") => {
            return Err(Error::Api(status)).with_context(|| {
                format!(
                    "applying {what}: the cluster's schema for this kind has no such field \
                     (check its spelling and the apiVersion; `kubectl explain` lists the fields)"
                )
            });
        }
        Err(e) => return Err(e).with_context(|| format!("applying {what}")),
    };
    let outcome = match before {
        None => Outcome::Created,
        Some(before) if comparable(&before, &obj) == comparable(&after, &obj) => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    };
    Ok(Applied {
        object: after,
        outcome,
        taken_over,
    })
}

/// The conflicts of a server-side apply's 409, as the API server lists them
/// after `Apply failed with N conflicts: ` (`conflict with "kubectl-scale"
/// using apps/v1: .spec.replicas`), or its whole message.
fn conflicts(message: &str) -> &str {
    message
        .split_once("conflict")
        .and_then(|(_, rest)| rest.split_once(": "))
        .map_or(message, |(_, listed)| listed)
}

/// What an apply of `config` can change in `obj`: not what the server
/// changes on every write, not the status (controllers write it, maybe
/// between our read and our apply), and of the labels and annotations
/// only those `config` sets (a controller's, such as a Deployment's
/// revision, are not ours).
fn comparable(obj: &DynamicObject, config: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(top) = value.as_object_mut() {
        top.remove("status");
    }
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(key);
        }
        let ours = |set: &Option<std::collections::BTreeMap<String, String>>| {
            set.as_ref()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        for (field, keys) in [
            ("labels", ours(&config.metadata.labels)),
            ("annotations", ours(&config.metadata.annotations)),
        ] {
            if let Some(m) = meta.get_mut(field).and_then(Value::as_object_mut) {
                m.retain(|k, _| keys.contains(k));
            }
            // None of ours left is the same as no map at all: a controller
            // that adds the first annotation of its own (a Deployment's
            // revision) between the two reads changes nothing of ours.
            if meta
                .get(field)
                .and_then(Value::as_object)
                .is_some_and(serde_json::Map::is_empty)
            {
                meta.remove(field);
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("a DynamicObject")
    }

    #[test]
    fn a_controllers_first_annotation_changes_nothing_of_ours() {
        let config = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "test-api", "labels": {"app": "test-api"}},
            "spec": {"replicas": 1}
        }));
        let before = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "test-api", "labels": {"app": "test-api"}, "resourceVersion": "7"},
            "spec": {"replicas": 1}
        }));
        let after = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "test-api", "labels": {"app": "test-api"}, "resourceVersion": "9",
                         "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": 1}, "status": {"replicas": 1}
        }));
        assert_eq!(comparable(&before, &config), comparable(&after, &config));
        let scaled = object(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "test-api", "labels": {"app": "test-api"}},
            "spec": {"replicas": 2}
        }));
        assert_ne!(comparable(&before, &config), comparable(&scaled, &config));
    }
}
