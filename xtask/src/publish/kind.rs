//! `kind load image-archive`: an image archive onto every node of the kind
//! cluster.

use anyhow::Result;
use xshell::cmd;

use super::publisher::Publisher;
use crate::ground::context::Ctx;
use crate::image::Image;

/// Loads into the kind cluster named `cluster` (`[kind] cluster`).
pub struct Kind {
    pub cluster: String,
}

impl Publisher for Kind {
    fn destination(&self, _cx: &Ctx) -> String {
        format!("kind cluster {}", self.cluster)
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        cx.runner.step(format!(
            "load {} into {}",
            image.reference,
            self.destination(cx)
        ));
        let (cluster, archive) = (&self.cluster, &image.archive);
        cx.runner.run(
            cmd!(cx.sh, "kind load image-archive --name {cluster} {archive}"),
            "loading images into kind",
        )?;
        Ok(image.reference.clone())
    }
}
