//! What a target is: the steps of a deployment, which the commands drive
//! the same way on any target. A target keeps nothing between calls: what
//! one step produced is handed to the next (`Session`, `Delivered`).

use anyhow::Result;

use crate::build::platform::Platform;
use crate::build::{Built, Profile};
use crate::ground::context::Ctx;
use crate::ground::services::ServiceSpec;
use crate::image::Image;
use crate::targets::engine::Engine;

/// What opening a target established, for every later call.
#[derive(Default)]
pub struct Session {
    /// Kubernetes targets: the engine for the kube context the guard approved.
    pub kube: Option<Engine>,
}

/// Images made reachable by a target, with the reference each runs under.
pub struct Delivery {
    pub image: Image,
    pub reference: String,
}

impl Delivered {
    /// `images` published by `publisher` (loaded or pushed), each with the
    /// reference it runs under, beside the services `built` names.
    ///
    /// # Errors
    /// The first image the publisher cannot take.
    pub fn published(
        cx: &Ctx,
        publisher: &dyn crate::publish::publisher::Publisher,
        built: Vec<Built>,
        images: Vec<Image>,
    ) -> anyhow::Result<Self> {
        let images = images
            .into_iter()
            .map(|image| {
                let reference = publisher.publish(cx, &image)?;
                Ok(Delivery { image, reference })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { built, images })
    }
}

/// What `deliver` made of the built services, for `apply`.
pub struct Delivered {
    pub built: Vec<Built>,
    pub images: Vec<Delivery>,
}

impl Delivered {
    /// The delivery of `spec`'s image.
    pub fn image_of(&self, spec: &ServiceSpec) -> Option<&Delivery> {
        self.images
            .iter()
            .find(|d| d.image.name == spec.settings.image)
    }
}

/// One service as a target sees it right now.
pub struct StatusRow {
    pub service: String,
    pub state: String,
    pub healthy: bool,
    pub url: Option<String>,
}

pub trait Target {
    /// Tools the target cannot work without.
    fn tools(&self) -> &'static [&'static str];

    /// The cargo profile its services are built with by default: `release`
    /// (tuned for build time) where images stay on this machine, `dist`
    /// (tuned for size) where they are pushed.
    fn profile(&self) -> Profile {
        Profile::Release
    }

    /// What every command needs before it talks to the target (Kubernetes:
    /// the kube context guard). Changes nothing.
    fn open(&self, cx: &Ctx) -> Result<Session>;

    /// Deploy only, before anything is built: the engine answers, the tools
    /// are there, and where images go takes them when `delivering` (false
    /// for prebuilt images, `deploy --images`, which nothing pushes).
    /// Changes nothing.
    fn prepare(&self, cx: &Ctx, session: &Session, delivering: bool) -> Result<()>;

    /// The platform of the machines that run its images (a cluster's
    /// nodes, a container engine's VM), which the services are built for;
    /// `None` where this host's own binaries run (the local target) or
    /// nothing could be asked (`--dry-run`).
    ///
    /// # Errors
    /// The machines cannot be asked, or run a platform images are not
    /// built for, or several (one image per platform for now).
    fn platform(&self, _cx: &Ctx, _session: &Session) -> Result<Option<Platform>> {
        Ok(None)
    }

    /// Makes the built services reachable by the target (load, push, or
    /// nothing), saying which before it happens.
    fn deliver(&self, cx: &Ctx, session: &Session, built: Vec<Built>) -> Result<Delivered>;

    /// As `deliver`, for images made already (`--toolchain docker`: by
    /// `docker build`, from source, with no binaries on this host; `built`
    /// names their services).
    ///
    /// # Errors
    /// A target that runs binaries, not images (the default); what
    /// publishing fails on.
    fn deliver_images(
        &self,
        _cx: &Ctx,
        _session: &Session,
        _built: Vec<Built>,
        _images: Vec<crate::image::Image>,
    ) -> Result<Delivered> {
        anyhow::bail!(
            "this target runs this host's own binaries, and --toolchain docker makes images: \
             deploy images with --target docker or a cluster, or drop --toolchain docker"
        )
    }

    /// Starts or updates the services, leaving unchanged ones alone, and
    /// returns once every one is ready, or explains why one is not.
    fn apply(&self, cx: &Ctx, session: &Session, delivered: &Delivered) -> Result<()>;

    /// The base URL of each service, as reachable from this machine.
    fn urls(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>>;

    /// How messages name the machines its images run on, with the verb:
    /// `kind's machines run`, `the docker engine runs`. None where no image
    /// runs: the local target runs this host's own binaries, so no other
    /// platform can run there.
    fn machines_run(&self) -> Option<String>;

    /// Lines `status` adds under its table: how services are reached,
    /// where that depends on the setup. Changes nothing.
    fn notes(&self, _cx: &Ctx, _session: &Session) -> Vec<String> {
        Vec::new()
    }

    /// One row per service in `specs`, in that order. Changes nothing.
    fn status(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>>;

    /// Prints the last `tail` lines of `spec`'s log (all when None), then,
    /// with `follow`, new lines until interrupted.
    fn logs(
        &self,
        cx: &Ctx,
        session: &Session,
        spec: &ServiceSpec,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<()>;

    /// Stops and removes what `apply` started for `specs`, and whatever of
    /// ours runs there for services the settings no longer have.
    /// Idempotent. Returns the services it found and removed (none the
    /// second time).
    fn teardown(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>>;

    /// What stops this target from running services now (beyond its tools),
    /// each with what to do: doctor is ready only without any. Changes
    /// nothing.
    fn blockers(&self, _cx: &Ctx) -> Vec<String> {
        Vec::new()
    }

    /// Where `spec`'s new log lines can be followed (the dev loop streams
    /// them), or None where that is not offered.
    fn log_source(&self, _cx: &Ctx, _spec: &ServiceSpec) -> Option<LogSource> {
        None
    }

    /// The manifests it applies, when it applies any (a change there
    /// redeploys in the dev loop).
    fn manifests(&self, _cx: &Ctx) -> Option<std::path::PathBuf> {
        None
    }

    /// The kustomize overlay it renders and applies, if it applies one.
    fn overlay(&self, _cx: &Ctx) -> Option<std::path::PathBuf> {
        None
    }

    /// Why `cargo xtask dev` does not run on it, if it does not.
    ///
    /// # Errors
    /// The reason, with what to use instead.
    fn dev_loop(&self) -> Result<()> {
        Ok(())
    }
}

/// Where a service's log can be followed.
pub enum LogSource {
    /// A file that grows (and is rotated on restart).
    File(std::path::PathBuf),
    /// A container, by the engine's CLI and the container's name: followed
    /// (`logs --follow`) while it runs, and again when a redeploy replaces
    /// it under the same name.
    Container { cli: String, name: String },
}
