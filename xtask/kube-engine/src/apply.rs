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
    let mut params = PatchParams::apply(opts.field_manager);
    params.force = opts.force_conflicts;
    let after = match api.patch(&name, &params, &Patch::Apply(&obj)).await {
        Ok(after) => after,
        Err(Error::Api(status)) if status.code == 409 => bail!(
            "applying {what}: {}\nAnother field manager owns these fields (someone ran kubectl edit \
             or apply?). Re-run with --force-conflicts to take them over.",
            status.message
        ),
        Err(e) => return Err(e).with_context(|| format!("applying {what}")),
    };
    let outcome = match before {
        None => Outcome::Created,
        Some(before) if comparable(&before) == comparable(&after) => Outcome::Unchanged,
        Some(_) => Outcome::Configured,
    };
    Ok(Applied {
        object: after,
        outcome,
    })
}

/// The object without what the server changes on every write.
fn comparable(obj: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(key);
        }
    }
    value
}
