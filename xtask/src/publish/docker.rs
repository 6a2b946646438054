//! Loading an image into the container engine (`docker load`, or podman's),
//! skipped when the engine has that image already.

use std::time::Duration;

use anyhow::Result;
use xshell::cmd;

use super::publisher::Publisher;
use crate::ground::context::Ctx;
use crate::ground::tools::engine_cli;
use crate::image::Image;

pub struct Docker;

impl Publisher for Docker {
    fn destination(&self, _cx: &Ctx) -> String {
        "docker".into()
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        let id = image_id(cx, &image.reference);
        let same = id.as_deref().map(|i| i.trim_start_matches("sha256:"))
            == Some(image.id.trim_start_matches("sha256:"));
        // (Under --dry-run the image has no id yet, so it is never the same.)
        if same {
            eprintln!("==> docker already has {} ({})", image.reference, image.id);
            return Ok(image.reference.clone());
        }
        cx.runner
            .step(format!("load {} into docker", image.reference));
        let (docker, archive) = (engine_cli(), &image.archive);
        cx.runner.run(
            cmd!(cx.sh, "{docker} load --input {archive}"),
            "loading images into docker",
        )?;
        Ok(image.reference.clone())
    }
}

/// The image ID the engine knows for `reference`, if any.
pub fn image_id(cx: &Ctx, reference: &str) -> Option<String> {
    let (docker, format) = (engine_cli(), "{{.Id}}");
    cx.runner
        .probe(
            cmd!(
                cx.sh,
                "{docker} image inspect --format {format} {reference}"
            ),
            "inspecting images",
            Duration::from_secs(30),
        )
        .ok()
        .filter(|p| p.success)
        .map(|p| p.stdout.trim().to_string())
}
