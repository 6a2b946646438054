//! `minikube image load`: an image archive into the minikube profile's
//! container runtime.

use anyhow::Result;
use xshell::cmd;

use super::publisher::Publisher;
use crate::ground::context::Ctx;
use crate::image::Image;

/// Loads into the minikube profile `profile` (`[minikube] profile`).
pub struct Minikube {
    pub profile: String,
}

impl Publisher for Minikube {
    fn destination(&self, _cx: &Ctx) -> String {
        format!("minikube profile {}", self.profile)
    }

    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String> {
        cx.runner.step(format!(
            "load {} into {}",
            image.reference,
            self.destination(cx)
        ));
        let (profile, archive) = (&self.profile, &image.archive);
        cx.runner.run(
            cmd!(cx.sh, "minikube image load --profile {profile} {archive}"),
            "loading images into minikube",
        )?;
        Ok(image.reference.clone())
    }
}
