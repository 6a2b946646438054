//! What the engine's API-fake tests share.

#![allow(dead_code)]

use std::time::Duration;

use kube::api::DynamicObject;
use kube_engine::apply::ApplyOptions;
use kube_engine::manifest::{self, ImageOverride};
use kube_engine::rollout::WaitOptions;

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
