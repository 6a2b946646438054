//! Rendered manifests: parse multi-document YAML, point containers at the
//! images we built, and order objects so that what others depend on comes first.

use anyhow::{Context, Result, bail};
use kube::api::DynamicObject;
use serde::Deserialize;
use serde_json::Value;

/// Parse every non-empty YAML document into an object with apiVersion, kind and name.
pub fn parse(yaml: &str) -> Result<Vec<DynamicObject>> {
    let mut objects = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(yaml).enumerate() {
        let value =
            Value::deserialize(doc).with_context(|| format!("manifest document {}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value)
            .with_context(|| format!("manifest document {} is not a Kubernetes object", i + 1))?;
        if obj
            .types
            .as_ref()
            .is_none_or(|t| t.kind.is_empty() || t.api_version.is_empty())
        {
            bail!("manifest document {} has no apiVersion/kind", i + 1);
        }
        if obj.metadata.name.as_deref().is_none_or(str::is_empty) {
            bail!(
                "manifest document {} ({}) has no metadata.name",
                i + 1,
                kind_of(&obj)
            );
        }
        objects.push(obj);
    }
    if objects.is_empty() {
        bail!("the manifest holds no objects");
    }
    Ok(objects)
}

pub fn kind_of(obj: &DynamicObject) -> &str {
    obj.types.as_ref().map_or("", |t| t.kind.as_str())
}

pub fn api_version_of(obj: &DynamicObject) -> &str {
    obj.types.as_ref().map_or("", |t| t.api_version.as_str())
}

/// `kind/name`, the way kubectl names an object.
pub fn display(obj: &DynamicObject) -> String {
    format!(
        "{}/{}",
        kind_of(obj).to_lowercase(),
        obj.metadata.name.as_deref().unwrap_or("?")
    )
}

/// An image to substitute: containers whose image names `name` (bare, or as
/// the last path segment of a reference) get `reference`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageOverride {
    pub name: String,
    pub reference: String,
}

impl std::str::FromStr for ImageOverride {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, reference)) if !name.is_empty() && !reference.is_empty() => Ok(Self {
                name: name.to_string(),
                reference: reference.to_string(),
            }),
            _ => Err(format!(
                "expected NAME=REFERENCE (e.g. test-api=registry/test-api@sha256:…), got `{s}`"
            )),
        }
    }
}

/// The repository's last path segment, without tag or digest:
/// `host:5000/acct/test-api:1@sha256:…` → `test-api`.
fn image_name(image: &str) -> &str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    last.split(':').next().unwrap_or(last)
}

/// Point every matching container (in any object: Deployments, pod templates
/// of custom resources such as a SeldonDeployment's componentSpecs) at the
/// overriding image. Every override must match at least one container, so a
/// typo cannot silently deploy the old image.
///
/// A reference pinned by digest (`…@sha256:…`) is pulled by the node from
/// its registry: a container that says `imagePullPolicy: Never` (the
/// minikube and kind overlays, for images loaded into the node by tag)
/// gets `IfNotPresent` instead, or the kubelet would answer
/// `ErrImageNeverPull` for an image nobody loaded.
pub fn set_images(objects: &mut [DynamicObject], overrides: &[ImageOverride]) -> Result<()> {
    let mut used = vec![false; overrides.len()];
    for obj in objects.iter_mut() {
        visit_containers(&mut obj.data, &mut |container| {
            let Some(image) = container.get("image").and_then(Value::as_str) else {
                return;
            };
            let name = image_name(image).to_string();
            if let Some(i) = overrides.iter().position(|o| o.name == name) {
                let reference = &overrides[i].reference;
                container["image"] = Value::String(reference.clone());
                if reference.contains("@sha256:")
                    && container.get("imagePullPolicy").and_then(Value::as_str) == Some("Never")
                {
                    container["imagePullPolicy"] = Value::String("IfNotPresent".into());
                }
                used[i] = true;
            }
        });
    }
    let unused: Vec<&str> = overrides
        .iter()
        .zip(&used)
        .filter(|(_, used)| !**used)
        .map(|(o, _)| o.name.as_str())
        .collect();
    if !unused.is_empty() {
        bail!(
            "no container in the manifest uses image {}; check the names in the overlay",
            unused.join(", ")
        );
    }
    Ok(())
}

/// The pod-template annotation that carries the image IDs (config
/// digests) of the containers `set_image_ids` matched. A rebuilt image
/// loaded under the same tag (minikube and kind load by tag; a dirty tree
/// keeps its tag) changes the annotation, so the rollout happens; an
/// unchanged image leaves the template as it was.
pub const IMAGE_IDS_ANNOTATION: &str = "kube-mlops.dev/image-ids";

/// Annotates every pod template (a map with `spec.containers`: a
/// Deployment's `spec.template`, a SeldonDeployment's `componentSpecs[]`)
/// whose containers use one of `ids`' images (`name` → `sha256:…`) with
/// `name=id` pairs, sorted, comma-separated.
pub fn set_image_ids(objects: &mut [DynamicObject], ids: &[ImageOverride]) {
    if ids.is_empty() {
        return;
    }
    for obj in objects.iter_mut() {
        annotate_templates(&mut obj.data, ids);
    }
}

fn annotate_templates(value: &mut Value, ids: &[ImageOverride]) {
    match value {
        Value::Object(map) => {
            let used: Vec<String> = map
                .get("spec")
                .and_then(|s| s.get("containers"))
                .and_then(Value::as_array)
                .map(|containers| {
                    let mut pairs: Vec<String> = containers
                        .iter()
                        .filter_map(|c| c.get("image").and_then(Value::as_str))
                        .filter_map(|image| {
                            let name = image_name(image);
                            ids.iter()
                                .find(|o| o.name == name)
                                .map(|o| format!("{name}={}", o.reference))
                        })
                        .collect();
                    pairs.sort();
                    pairs.dedup();
                    pairs
                })
                .unwrap_or_default();
            if !used.is_empty() {
                let metadata = map
                    .entry("metadata")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Value::Object(meta) = metadata {
                    let annotations = meta
                        .entry("annotations")
                        .or_insert_with(|| Value::Object(Default::default()));
                    if let Value::Object(a) = annotations {
                        a.insert(IMAGE_IDS_ANNOTATION.into(), Value::String(used.join(",")));
                    }
                }
            }
            for child in map.values_mut() {
                annotate_templates(child, ids);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| annotate_templates(v, ids)),
        _ => {}
    }
}

fn visit_containers(value: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(key.as_str(), "containers" | "initContainers")
                    && let Value::Array(items) = child
                {
                    items.iter_mut().for_each(&mut *f);
                } else {
                    visit_containers(child, f);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit_containers(v, f)),
        _ => {}
    }
}

/// Only the objects of the named services (by `app.kubernetes.io/name`),
/// plus shared objects that name no service (the namespace). Empty keeps all.
pub fn select(objects: Vec<DynamicObject>, names: &[String]) -> Vec<DynamicObject> {
    if names.is_empty() {
        return objects;
    }
    objects
        .into_iter()
        .filter(|o| {
            o.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app.kubernetes.io/name"))
                .is_none_or(|n| names.contains(n))
        })
        .collect()
}

/// Apply order: definitions and namespaces before what lives in them.
pub fn order(objects: &mut [DynamicObject]) {
    objects.sort_by_key(|o| match kind_of(o) {
        "CustomResourceDefinition" => 0,
        "Namespace" => 1,
        "ServiceAccount" | "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding"
        | "ConfigMap" | "Secret" => 2,
        "Service" => 3,
        _ => 4,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: test-api, labels: {app.kubernetes.io/name: test-api}}\n---\n\
        apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: test-api, labels: {app.kubernetes.io/name: test-api}}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: test-api, image: test-api}\n      - {name: side, image: 'reg:5000/x/other:1'}\n---\n\
        apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n---\n";

    fn overrides(pairs: &[&str]) -> Vec<ImageOverride> {
        pairs.iter().map(|p| p.parse().expect("override")).collect()
    }

    #[test]
    fn parses_orders_and_sets_images() -> Result<()> {
        let mut objs = parse(YAML)?;
        assert_eq!(objs.len(), 3);
        order(&mut objs);
        let names: Vec<String> = objs.iter().map(display).collect();
        assert_eq!(
            names,
            ["namespace/ns", "service/test-api", "deployment/test-api"]
        );
        set_images(
            &mut objs,
            &overrides(&["test-api=r/test-api@sha256:ab", "other=r/other:2"]),
        )?;
        let containers = &objs[2].data["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], "r/test-api@sha256:ab");
        assert_eq!(containers[1]["image"], "r/other:2");
        Ok(())
    }

    #[test]
    fn an_image_pinned_by_digest_is_pulled_where_the_overlay_said_never() -> Result<()> {
        let never = YAML.replace(
            "image: test-api}",
            "image: test-api, imagePullPolicy: Never}",
        );
        let policy = |objs: &[DynamicObject]| {
            objs[1].data["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"].clone()
        };
        let mut loaded = parse(&never)?;
        set_images(&mut loaded, &overrides(&["test-api=kube-mlops/test-api:1"]))?;
        assert_eq!(policy(&loaded), "Never", "a loaded image stays Never");
        let mut pinned = parse(&never)?;
        set_images(&mut pinned, &overrides(&["test-api=r/test-api@sha256:ab"]))?;
        assert_eq!(policy(&pinned), "IfNotPresent");
        Ok(())
    }

    #[test]
    fn image_ids_annotate_the_pod_templates_that_use_them() -> Result<()> {
        let mut objs = parse(YAML)?;
        order(&mut objs);
        set_images(&mut objs, &overrides(&["test-api=r/test-api:1"]))?;
        set_image_ids(
            &mut objs,
            &overrides(&["test-api=sha256:aa", "nope=sha256:bb"]),
        );
        let template = &objs[2].data["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"][IMAGE_IDS_ANNOTATION],
            "test-api=sha256:aa"
        );
        assert!(
            objs[1].data.get("metadata").is_none(),
            "the Service is untouched"
        );
        Ok(())
    }

    #[test]
    fn unknown_image_is_an_error() -> Result<()> {
        let mut objs = parse(YAML)?;
        let err = set_images(&mut objs, &overrides(&["tset-api=x"])).expect_err("must fail");
        assert!(err.to_string().contains("tset-api"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_documents_are_named() {
        let err = parse("kind: Service\nmetadata: {name: a}\n").expect_err("must fail");
        assert!(format!("{err:#}").contains("document 1"), "{err:#}");
        let err = parse("apiVersion: v1\nkind: Service\nmetadata: {}\n").expect_err("must fail");
        assert!(err.to_string().contains("no metadata.name"), "{err}");
        assert!(parse("---\n").is_err());
        assert!("novalue".parse::<ImageOverride>().is_err());
        assert_eq!(image_name("h:5000/a/b:1@sha256:00"), "b");
    }
}
