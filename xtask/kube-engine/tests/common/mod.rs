//! What the engine's API-fake tests share.

#![allow(dead_code)]

use std::time::Duration;

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube_engine::apply::ApplyOptions;
use kube_engine::manifest::{self, ImageOverride};
use kube_engine::rollout::WaitOptions;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Apply as the binary does by default.
pub const OPTS: ApplyOptions<'static> = ApplyOptions {
    field_manager: "kube-mlops",
    force_conflicts: false,
    default_namespace: "default",
};

/// A short deadline, polled often.
pub fn wait_opts(secs: u64) -> WaitOptions {
    WaitOptions {
        timeout: Duration::from_secs(secs),
        poll: Duration::from_millis(100),
    }
}

/// The objects of `yaml` with containers using `image` set to `reference`.
pub fn objects(yaml: &str, image: &str, reference: &str) -> Vec<DynamicObject> {
    let mut objs = manifest::parse(yaml).expect("manifest");
    let image = ImageOverride {
        name: image.into(),
        reference: reference.into(),
    };
    manifest::set_images(&mut objs, &[image]).expect("images");
    objs
}

/// Play a controller: merge `status` into the object's status subresource.
pub async fn patch_status<K>(client: &kube::Client, namespace: &str, name: &str, status: Value)
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .expect("status patch");
}

/// Every needle is in the text; the panic shows the whole text.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
