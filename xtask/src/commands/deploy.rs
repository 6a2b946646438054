//! `cargo xtask deploy`: build, deliver, apply (and wait), smoke-test, print
//! URLs; with `--seldon`, the model as SeldonDeployments.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::args::ProfileArg;
use super::args::TargetArg;
use super::args::lock_target;
use super::args::seldon_target as kubernetes;
use super::invocation::Invocation;
use crate::build;
use crate::build::Built;
use crate::build::platform::Platform;
use crate::ground::lock::Kind;
use crate::ground::services;
use crate::ground::settings::TargetName;
use crate::image::Image;
use crate::release::hydrate;
use crate::targets;
use crate::targets::target::{Delivered, Delivery, Target};
use crate::verify::smoke;

#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub target: TargetArg,
    /// Deploy the model as SeldonDeployments instead (needs `seldon install`)
    #[arg(long, conflicts_with = "services")]
    pub seldon: bool,
    /// Services to deploy (default: all)
    pub services: Vec<String>,
    #[command(flatten)]
    pub profile: ProfileArg,
    /// The images' platform and how it is built (default: the platform
    /// of the target's machines, asked of them)
    #[command(flatten)]
    pub platform: super::args::PlatformArg,
    /// Deploy prebuilt images pinned by digest instead of building (a
    /// Kubernetes target; FILE as `release` or `image push` wrote it with
    /// --file-output; each image must be for the platform of the target's
    /// machines, as its registry says)
    #[arg(long, value_name = "FILE", conflicts_with = "seldon")]
    pub images: Option<std::path::PathBuf>,
    /// Take over the fields another field manager set on our objects (after
    /// a `kubectl scale` or `kubectl edit`), naming whose fields it takes,
    /// instead of failing on the conflict (a Kubernetes target)
    #[arg(long)]
    pub force_conflicts: bool,
}

impl DeployArgs {
    /// What to build for: `--platform`, else the platform of the target's
    /// machines (asked of its nodes or engine), else this host's. Where
    /// that cannot be asked or built, a dry run lists why and plans this
    /// host's build; a real run stops.
    ///
    /// # Errors
    /// `--platform` on the local target (it runs this host's binaries), or
    /// one the target's machines do not run; what cannot be built here.
    fn destination(
        &self,
        cx: &Invocation,
        name: TargetName,
        target: &dyn Target,
        session: &targets::target::Session,
    ) -> Result<build::Destination> {
        let given = self.platform.one()?;
        let Some(machines) = target.machines_run() else {
            if let Some(p) = given.filter(|p| *p != build::platform::host_platform()) {
                bail!(
                    "--platform {p}: the {name} target runs this host's own binaries; another \
                     platform's images run on --target docker or a cluster"
                );
            }
            let to = self.platform.destination_on(None)?;
            if let build::toolchain::Toolchain::Docker { .. } = to.toolchain {
                bail!(
                    "--toolchain docker makes images, and the {name} target runs this host's \
                     own binaries: deploy images with --target docker or a cluster, or drop \
                     --toolchain docker"
                );
            }
            return Ok(to);
        };
        let runs_on = self.machines_platform(cx, name, target, session, &machines)?;
        let why = match (given, runs_on) {
            (None, Some(p)) => format!("{machines} {p}"),
            _ => format!("building for {name}"),
        };
        let to = self
            .platform
            .destination_on_or_planned(&cx.runner, runs_on, Some(why))?;
        if to.toolchain.links_glibc_dynamically() {
            cx.runner.precondition(anyhow::anyhow!(
                "{}",
                crate::image::glibc_refused(&to.toolchain)
            ))?;
        }
        Ok(to)
    }

    /// The platform `target`'s machines run, asked of them, where
    /// `--platform` does not say (None where it does, or where they cannot
    /// say and a dry run goes on).
    ///
    /// # Errors
    /// `--platform` other than what they answer; no answer (give
    /// `--platform`); outside a dry run.
    fn machines_platform(
        &self,
        cx: &Invocation,
        name: TargetName,
        target: &dyn Target,
        session: &targets::target::Session,
        machines: &str,
    ) -> Result<Option<build::platform::Platform>> {
        let given = self.platform.one()?;
        let asked = target.platform(cx, session);
        Ok(match (given, asked) {
            // The machines, when they answer, must run what was asked for;
            // a cluster of several platforms, or one whose nodes this user
            // may not list, still deploys with --platform.
            (Some(p), Ok(Some(runs))) if p != runs => {
                cx.runner.precondition(anyhow::anyhow!(
                    "{machines} {runs}, not {p} (--platform): their images would die with \
                     `exec format error`; drop --platform, or give --platform {runs}"
                ))?;
                None
            }
            (Some(_), _) => None,
            (None, Ok(p)) => p,
            (None, Err(e)) => {
                cx.runner.precondition(e.context(format!(
                    "asking {name} which platform its machines run (give --platform to choose \
                     it yourself)"
                )))?;
                None
            }
        })
    }

    /// Makes the services' images or binaries reach `target`: the images
    /// `--images` pins (nothing is built), images compiled inside `docker
    /// build` (`--toolchain docker`), or a build here, delivered.
    ///
    /// # Errors
    /// What the build, the pins' check or the delivery refuses.
    fn deliver(
        &self,
        cx: &Invocation,
        name: TargetName,
        target: &dyn Target,
        session: &targets::target::Session,
        specs: &[services::ServiceSpec],
    ) -> Result<Delivered> {
        Ok(match &self.images {
            Some(file) => {
                // The platform the pinned images must be for: what the
                // machines answer (nothing is built, so --platform only
                // stands in where they cannot say).
                let needed = match target
                    .machines_run()
                    .filter(|_| target.overlay(cx).is_some())
                {
                    Some(machines) => {
                        let asked = target.platform(cx, session).ok().flatten();
                        asked.or(self.platform.one()?).map(|p| (p, machines))
                    }
                    None => None,
                };
                prebuilt(cx, target, specs, file, needed)?
            }
            None => {
                let to = self.destination(cx, name, target, session)?;
                let profile = self.profile.or(target.profile());
                if let build::toolchain::Toolchain::Docker { .. } = to.toolchain {
                    // Compiled inside `docker build`: images, no binaries here.
                    super::args::note_emulation(cx, std::slice::from_ref(&to));
                    let images = crate::image::build_images(
                        cx,
                        &cx.image_setup(),
                        specs,
                        crate::image::Builder::Docker,
                        profile,
                        std::slice::from_ref(&to),
                    )?;
                    let built = specs
                        .iter()
                        .map(|s| Built::elsewhere(s.clone(), to.platform))
                        .collect();
                    target
                        .deliver_images(cx, session, built, images)
                        .with_context(|| format!("delivering to {name}"))?
                } else {
                    let built = build::build_for(cx, &cx.all_services(), specs, profile, &to)?;
                    target
                        .deliver(cx, session, built)
                        .with_context(|| format!("delivering to {name}"))?
                }
            }
        })
    }

    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let name = cx.target(self.target.target);
        let _lock = lock_target(cx, name, Kind::Run)?;
        if self.seldon {
            return self.deploy_seldon(cx, name);
        }
        let target = cx.target_for(name)?;
        if self.force_conflicts && target.overlay(cx).is_none() {
            bail!(
                "--force-conflicts takes over fields on a Kubernetes target ({}); {name} has no \
                 field managers: drop it",
                crate::targets::clusters::names()
            );
        }
        let specs = cx.select(&self.services)?;
        let mut session = target
            .open(cx)
            .with_context(|| format!("preparing target {name}"))?;
        force_conflicts(&mut session, self.force_conflicts);
        target
            .prepare(cx, &session, self.images.is_none())
            .with_context(|| format!("preparing target {name}"))?;
        let delivered = self.deliver(cx, name, target.as_ref(), &session, &specs)?;
        target
            .apply(cx, &session, &delivered)
            .with_context(|| format!("deploying to {name}"))?;
        let urls = target.urls(cx, &session, &specs)?;
        for (spec, url) in specs.iter().zip(&urls) {
            smoke::check(cx, spec, url)?;
        }
        if cx.json() {
            // `{"target", "seldon": false, "services": [{"name", "url",
            // "image"}]}`: image is the reference the service runs (pinned by
            // digest where the target pushes), null on the local target.
            let services: Vec<serde_json::Value> = specs
                .iter()
                .zip(&urls)
                .map(|(spec, url)| {
                    serde_json::json!({
                        "name": spec.name,
                        "url": url,
                        "image": delivered.image_of(spec).map(|d| d.reference.clone()),
                    })
                })
                .collect();
            cx.emit(&serde_json::json!({
                "target": name.as_str(),
                "seldon": false,
                "services": services,
            }));
            return Ok(ExitCode::SUCCESS);
        }
        cx.runner.unless_dry_run(|| {
            println!("Deployed to {name}:");
            for (spec, url) in specs.iter().zip(&urls) {
                println!("  {:<14} {url}", spec.name);
            }
            Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }

    /// `deploy --seldon`: the models as SeldonDeployments on `name`'s
    /// cluster, called through the ingress.
    fn deploy_seldon(&self, cx: &Invocation, name: TargetName) -> Result<ExitCode> {
        let kube = kubernetes(cx, name)?;
        let mut session = kube.open(cx)?;
        force_conflicts(&mut session, self.force_conflicts);
        let profile = self.profile.or(kube.profile());
        // Asked once the CRD is known to be there, before the build.
        let to = || self.destination(cx, name, &kube, &session);
        let deployed = crate::seldon::deploy::deploy(cx, &kube, &session, profile, &to)?;
        if cx.json() {
            let models: Vec<serde_json::Value> = deployed
                .models
                .iter()
                .map(|(model, url)| serde_json::json!({ "name": model, "url": url }))
                .collect();
            cx.emit(&serde_json::json!({
                "target": name.as_str(),
                "seldon": true,
                "services": models,
            }));
            return Ok(ExitCode::SUCCESS);
        }
        cx.runner.unless_dry_run(|| {
            println!("Deployed to Seldon Core on {name}:");
            for (model, url) in &deployed.models {
                println!("  {model:<18} {url}");
            }
            Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--force-conflicts`: the engine of a Kubernetes session takes over fields.
fn force_conflicts(session: &mut targets::target::Session, force: bool) {
    if let Some(engine) = session.kube.as_mut() {
        engine.force_conflicts = force;
    }
}

/// What `--images FILE` delivers: nothing is built; each service runs the
/// image FILE pins for its image name.
fn prebuilt(
    cx: &Invocation,
    target: &dyn Target,
    specs: &[services::ServiceSpec],
    file: &std::path::Path,
    needed: Option<(Platform, String)>,
) -> Result<Delivered> {
    if target.overlay(cx).is_none() {
        anyhow::bail!(
            "--images deploys prebuilt images to a Kubernetes target ({}); this target runs \
             what it builds here: drop --images",
            crate::targets::clusters::names()
        );
    }
    let pins = hydrate::pins_from_file(file)?;
    let mut images: Vec<Delivery> = Vec::new();
    for spec in specs {
        let image = &spec.settings.image;
        let pin = pins.iter().find(|p| &p.name == image).with_context(|| {
            let has = if pins.is_empty() {
                "its \"builds\" list is empty".to_string()
            } else {
                let names: Vec<&str> = pins.iter().map(|p| p.name.as_str()).collect();
                format!("its images: {}", names.join(", "))
            };
            format!(
                "{} pins no image named {image} (service {}); {has}: make it with `cargo \
                 xtask image push --file-output FILE` or `cargo xtask release`",
                file.display(),
                spec.name,
            )
        })?;
        if images.iter().any(|d| &d.image.name == image) {
            continue;
        }
        let reference = format!("{}@{}", pin.repository, pin.digest);
        images.push(Delivery {
            image: Image {
                name: image.clone(),
                reference: reference.clone(),
                tag: String::new(),
                archive: std::path::PathBuf::new(),
                digest: pin.digest.clone(),
                // Pinned by digest: a new image is a new reference already.
                id: String::new(),
                size: 0,
                platforms: Vec::new(),
            },
            reference,
        });
    }
    if let Some((platform, machines)) = &needed {
        for d in &images {
            check_platform(cx, file, &d.image, platform, machines)?;
        }
    }
    cx.runner.step(format!(
        "no build: {} image(s) pinned by digest in {}",
        images.len(),
        file.display()
    ));
    let built = specs
        .iter()
        .map(|s| Built::elsewhere(s.clone(), crate::build::host_platform()))
        .collect();
    Ok(Delivered { built, images })
}

/// Refuses `image` (pinned by digest in `file`) unless the registry says
/// it is for `platform` (a single image of it, or an index with an entry
/// for it): `machines` (`kind's machines run`) would otherwise die with
/// `exec format error`. A registry this host cannot reach leaves the check
/// undone, said as a warning.
///
/// # Errors
/// An image of other platforms, or one the registry does not serve
/// (outside a dry run).
fn check_platform(
    cx: &Invocation,
    file: &std::path::Path,
    image: &Image,
    platform: &Platform,
    machines: &str,
) -> Result<()> {
    let (repository, digest) = image
        .reference
        .split_once('@')
        .unwrap_or((image.reference.as_str(), image.digest.as_str()));
    let registry = match crate::publish::pull::Download::open_for_digests(repository) {
        Ok(registry) => registry,
        Err(e) => {
            eprintln!(
                "warning: cannot reach the registry of {} to read which platforms it is for \
                 ({e:#}); deploying it unchecked",
                image.reference
            );
            return Ok(());
        }
    };
    // The registry answered: an image it does not have (or cannot show) is
    // one the nodes cannot pull either.
    let platforms = match registry.platforms(digest) {
        Ok(platforms) => platforms,
        Err(e) => {
            return cx.runner.precondition(e.context(format!(
                "{}: {} is pinned to {}, which its registry does not serve: its pods would \
                 not start (ImagePullBackOff); pin an image that was pushed there",
                file.display(),
                image.name,
                image.reference
            )));
        }
    };
    if platforms
        .iter()
        .any(|p| Platform::parse(p).is_ok_and(|p| p == *platform))
    {
        return Ok(());
    }
    cx.runner.precondition(anyhow::anyhow!(
        "{}: {} is pinned to {}, an image for {}; {machines} {platform}: its pods would die \
         with `exec format error`. Pin an image built for {platform}: `cargo xtask image push \
         --platform {platform} --file-output FILE` writes one (several platforms, comma-\
         separated, make an image index)",
        file.display(),
        image.name,
        image.reference,
        if platforms.is_empty() {
            "no platform".to_string()
        } else {
            platforms.join(", ")
        }
    ))
}
