//! What a publisher is: it makes a built image available where something
//! will run it, and says under which reference.

use anyhow::Result;

use crate::ground::context::Ctx;
use crate::image::Image;

pub trait Publisher {
    /// Where images go, for messages (`docker`, `minikube profile dev`).
    fn destination(&self, cx: &Ctx) -> String;

    /// Makes `image` available there, saying so first; returns the
    /// reference a runtime should use (the tag after a load, `repo@digest`
    /// after a push).
    fn publish(&self, cx: &Ctx, image: &Image) -> Result<String>;

    /// Whether images leave this machine (a registry), so that what is
    /// built for it is what ships.
    fn pushes(&self) -> bool {
        false
    }

    /// Before anything is built: whether the destination takes images
    /// (a registry answers and accepts the credentials for `image`'s
    /// repository). A real run stops here, not after a long build; a dry
    /// run lists the problem with its other blockers.
    ///
    /// # Errors
    /// The problem, on a real run.
    fn preflight(&self, _cx: &Ctx, _image: &str) -> Result<()> {
        Ok(())
    }
}
