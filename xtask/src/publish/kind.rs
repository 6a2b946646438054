//! `kind load image-archive`: an image archive onto every node of the kind
//! cluster.

use anyhow::Result;
use xshell::cmd;

use super::publisher::Publisher;
use crate::ground::context::Ctx;
use crate::image::Image;

pub struct Kind;

impl Publisher for Kind {
    fn destination(&self, cx: &Ctx) -> String {
        format!("kind cluster {}", cx.config.kind.cluster)
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        cx.runner.step(format!(
            "load {} into {}",
            image.reference,
            self.destination(cx)
        ));
        let (cluster, archive) = (&cx.config.kind.cluster, &image.archive);
        cx.runner.run(
            cmd!(cx.sh, "kind load image-archive --name {cluster} {archive}"),
            "loading images into kind",
        )?;
        Ok(image.reference.clone())
    }
}
