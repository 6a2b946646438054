//! `cargo xtask image build|load|push`: images from source (see `image`),
//! and where they go (see `publish`): `--into` and `push` only pick a
//! publisher.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use super::invocation::Invocation;
use crate::ground::services;
use crate::ground::settings::TargetName;
use crate::image::{self, Builder, Image};
use crate::publish::publisher::Publisher;
use crate::publish::{docker, registry};

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
    #[command(flatten)]
    pub profile: super::args::ProfileArg,
    #[command(flatten)]
    pub platform: super::args::PlatformArg,
    /// Write the images as JSON in Skaffold's build-artifacts shape:
    /// {"builds":[{"imageName":…,"tag":"repo:tag@sha256:…"}]}
    #[arg(long, value_name = "FILE", global = true)]
    pub file_output: Option<std::path::PathBuf>,
}

/// `--builder`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BuilderArg {
    /// Assemble the OCI image in-process, no daemon (default)
    #[default]
    Native,
    /// `docker build` with the service's committed Dockerfile
    Docker,
}

impl From<BuilderArg> for Builder {
    fn from(b: BuilderArg) -> Self {
        match b {
            BuilderArg::Native => Builder::Native,
            BuilderArg::Docker => Builder::Docker,
        }
    }
}

/// `image load --into`'s values: the docker engine, and each cluster kind
/// whose node loads images itself (`ClusterKind::loads_images`).
fn load_into_parser() -> impl clap::builder::TypedValueParser<Value = TargetName> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    let kinds = crate::targets::clusters::KINDS
        .iter()
        .filter(|k| k.loads_images)
        .map(|k| PossibleValue::new(k.name.as_str()).help(k.about));
    PossibleValuesParser::new(
        std::iter::once(PossibleValue::new("docker").help("The container engine")).chain(kinds),
    )
    .try_map(|s| crate::targets::named(&s))
}

/// Where `image load --into` loads: the docker engine, or the cluster's
/// node, as the cluster names it (kind's cluster, minikube's profile).
///
/// # Errors
/// As `Invocation::cluster_for`.
fn load_publisher(cx: &Invocation, into: TargetName) -> Result<Box<dyn Publisher>> {
    Ok(match cx.cluster_for(into)? {
        Some(cluster) => cluster.publisher(cx),
        None => Box::new(docker::Docker),
    })
}

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build images: tagged <registry>/<name>:<version>-<git sha>, digest printed
    Build {
        /// Services whose images to build (default: all)
        services: Vec<String>,
        #[arg(long, value_enum, default_value_t = BuilderArg::Native)]
        builder: BuilderArg,
    },
    /// Build (for the engine's or node's platform unless --platform), then load the images into
    /// the docker engine or a local cluster's node
    Load {
        /// Services whose images to load (default: all)
        services: Vec<String>,
        /// Where to load them: the docker engine, or a local cluster's node
        #[arg(long, value_parser = load_into_parser(), default_value = "docker")]
        into: TargetName,
        #[arg(long, value_enum, default_value_t = BuilderArg::Native)]
        builder: BuilderArg,
    },
    /// Build, then push the images through the OCI distribution API
    Push {
        /// Services whose images to push (default: all)
        services: Vec<String>,
        /// Registry and account to push to, e.g. 127.0.0.1:5555/me (default: [registry] in xtask.toml)
        #[arg(long, value_name = "HOST/ACCOUNT", value_parser = crate::ground::names::registry_base)]
        registry: Option<String>,
        /// Use plain HTTP (a registry on loopback)
        #[arg(long)]
        insecure: bool,
        #[arg(long, value_enum, default_value_t = BuilderArg::Native)]
        builder: BuilderArg,
    },
    /// Check a released image's signature and attestations with a public key, then rebuild it
    /// from the commit its provenance names and compare digests
    Verify {
        /// The image: repository:tag or repository@sha256:…
        reference: String,
        /// The PEM public key (`cosign.pub` beside a release, or KEY.pub from `release keygen`)
        #[arg(long, value_name = "PUB")]
        key: std::path::PathBuf,
        /// Use plain HTTP (a registry on loopback)
        #[arg(long)]
        insecure: bool,
        /// Check signatures only; do not rebuild
        #[arg(long)]
        no_rebuild: bool,
    },
}

impl ImageArgs {
    pub fn run(self, cx: &Invocation) -> Result<ExitCode> {
        let mut load_into = None;
        let (services, builder, publisher): (_, _, Option<Box<dyn Publisher>>) = match self.command
        {
            ImageCommand::Build { services, builder } => (services, builder, None),
            ImageCommand::Load {
                services,
                into,
                builder,
            } => {
                load_into = Some(into);
                (services, builder, Some(load_publisher(cx, into)?))
            }
            ImageCommand::Push {
                services,
                registry,
                insecure,
                builder,
            } => (
                services,
                builder,
                Some(Box::new(registry::Registry {
                    base: registry,
                    insecure,
                    siblings: services::image_names(&cx.config.services),
                    settings: cx.config.registry.clone(),
                })),
            ),
            ImageCommand::Verify {
                reference,
                key,
                insecure,
                no_rebuild,
            } => return verify(cx, &reference, &key, insecure, no_rebuild),
        };
        // What is pushed ships: the size profile; the rest stays here.
        let profile = self
            .profile
            .or(if matches!(publisher, Some(ref p) if p.pushes()) {
                crate::build::Profile::Dist
            } else {
                crate::build::Profile::Release
            });
        let specs = cx.select(&services)?;
        if let (Some(p), Some(first)) = (&publisher, specs.first()) {
            // The registry answers and takes the credentials, before the build.
            p.preflight(cx, &first.settings.image)?;
        }
        if builder == BuilderArg::Docker && self.platform.platform.len() > 1 {
            anyhow::bail!(
                "--builder docker builds one platform at a time; an image index of several is \
                 the native builder's (drop --builder docker)"
            );
        }
        let to = destinations(cx, &self.platform, load_into, builder)?;
        super::args::note_emulation(cx, &to);
        if let Some(into) = load_into
            && let Some(asked) = self.platform.one()?
        {
            note_foreign(cx, into, asked);
        }
        let images =
            image::build_images(cx, &cx.image_setup(), &specs, builder.into(), profile, &to)?;
        let publisher_none = publisher.is_none();
        let builds: Vec<serde_json::Value> = match publisher {
            None => {
                if !cx.json() {
                    print_images(cx, &images)?;
                }
                images
                    .iter()
                    .map(|i| artifact(i, &i.reference, &i.digest))
                    .collect()
            }
            Some(p) => publish(cx, p.as_ref(), &images)?,
        };
        let built = publisher_none.then_some(images.as_slice());
        report(cx, &builds, built, self.file_output.as_deref())?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `--output json`'s document and `--file-output`'s file: the build
/// artifacts, and in the JSON each image's size (bytes, uncompressed) and
/// archive when they were only `built`.
fn report(
    cx: &Invocation,
    builds: &[serde_json::Value],
    built: Option<&[Image]>,
    file_output: Option<&std::path::Path>,
) -> Result<()> {
    let mut shown = builds.to_vec();
    for (entry, i) in shown.iter_mut().zip(built.unwrap_or_default()) {
        entry["size"] = i.size.into();
        entry["archive"] = i.archive.display().to_string().into();
    }
    cx.emit(&serde_json::json!({ "builds": shown }));
    if let Some(file) = file_output {
        cx.runner.effect(format!("write {}", file.display()), || {
            let doc = serde_json::json!({ "builds": builds });
            std::fs::write(file, serde_json::to_vec_pretty(&doc)?)
                .with_context(|| format!("cannot write {}", file.display()))
        })?;
    }
    Ok(())
}

/// What to build for: an engine runs one platform's image (`into`'s own
/// unless --platform says otherwise); an index goes to a registry. A dry
/// run lists what this host lacks and plans the build it would make once
/// installed. The docker builder compiles in its container what this host
/// cannot build.
fn destinations(
    cx: &Invocation,
    platform: &super::args::PlatformArg,
    into: Option<TargetName>,
    builder: BuilderArg,
) -> Result<Vec<crate::build::Destination>> {
    if builder == BuilderArg::Docker {
        let runs_on = match (platform.one()?, into) {
            (None, Some(into)) => cx.machines_platform(into)?,
            _ => None,
        };
        if let Some(to) = platform.docker_builder_destination(runs_on)? {
            return Ok(vec![to]);
        }
    }
    match into {
        Some(into) => {
            let runs_on = match platform.one()? {
                Some(_) => None,
                None => cx.machines_platform(into)?,
            };
            Ok(vec![
                platform.destination_on_or_planned(&cx.runner, runs_on, None)?,
            ])
        }
        None => platform.destinations_or_planned(&cx.runner),
    }
}

/// Says, before the build, when `--platform` asks for images of another
/// platform than the engine or nodes `into` loads into run: they load,
/// and run there only under emulation (or not at all).
fn note_foreign(cx: &Invocation, into: TargetName, asked: crate::build::platform::Platform) {
    if let Ok(Some(runs)) = cx.machines_platform(into)
        && runs != asked
    {
        eprintln!(
            "note: {into} runs {runs}: {asked} images load there, but run only under \
             emulation (binfmt_misc with QEMU), if at all; drop --platform to build for {runs}"
        );
    }
}

/// Each image published by `p`, as build-artifact entries: a push pins by
/// the digest the registry reported; a load keeps the tagged reference.
fn publish(cx: &Invocation, p: &dyn Publisher, images: &[Image]) -> Result<Vec<serde_json::Value>> {
    let mut builds = Vec::new();
    for image in images {
        let pinned = p.publish(cx, image)?;
        let (tagged, digest) = match pinned.split_once('@') {
            Some((repository, digest)) => {
                (format!("{repository}:{}", image.tag), digest.to_string())
            }
            None => (pinned.clone(), image.digest.clone()),
        };
        builds.push(artifact(image, &tagged, &digest));
    }
    Ok(builds)
}

/// One entry of Skaffold's build-artifacts list: `tagged` is
/// `repository:tag`, pinned with `@digest`; an image index's platforms
/// (`linux/amd64`) under `platforms`.
fn artifact(image: &Image, tagged: &str, digest: &str) -> serde_json::Value {
    let mut entry = serde_json::json!({
        "imageName": image.name,
        "tag": format!("{tagged}@{digest}"),
        "digest": digest,
    });
    if !image.platforms.is_empty() {
        entry["platforms"] = image.platforms.clone().into();
    }
    entry
}

fn print_images(cx: &Invocation, images: &[Image]) -> Result<()> {
    cx.runner.unless_dry_run(|| {
        for i in images {
            println!(
                "{}\n  digest  {}\n  size    {:.1} MB uncompressed\n  archive {}",
                i.reference,
                i.digest,
                i.size as f64 / 1e6,
                i.archive.display()
            );
            if !i.platforms.is_empty() {
                println!("  index   {}", i.platforms.join(", "));
            }
        }
        Ok(())
    })?;
    Ok(())
}

/// `image verify`: signatures and attestations, then the rebuild.
fn verify(
    cx: &Invocation,
    reference: &str,
    key: &std::path::Path,
    insecure: bool,
    no_rebuild: bool,
) -> Result<ExitCode> {
    let checked = cx
        .runner
        .unless_dry_run(|| crate::release::verify::signatures(reference, key, insecure))?;
    let Some(v) = checked else {
        cx.runner.step(format!(
            "verify the signature and the SBOM and provenance attestations of {reference} with {}",
            key.display()
        ));
        return Ok(ExitCode::SUCCESS);
    };
    // `--output json`: `{"image", "signature": true, "attestations": [...],
    // "commit", "profile", "rebuilt": <digest or null>}`.
    let doc = |rebuilt: Option<&str>| {
        serde_json::json!({
            "image": format!("{}@{}", v.repository, v.digest),
            "signature": true,
            "attestations": v.attestations,
            "commit": v.commit,
            "profile": v.profile,
            "rebuilt": rebuilt,
        })
    };
    if !cx.json() {
        println!("{}@{}", v.repository, v.digest);
        println!("  ✓ signature verifies with {}", key.display());
        println!("  ✓ attestations verify: {}", v.attestations.join(", "));
    }
    if no_rebuild {
        cx.emit(&doc(None));
        return Ok(ExitCode::SUCCESS);
    }
    let rebuilt = crate::release::verify::rebuild(cx, &v)?;
    if let Some(digest) = rebuilt {
        if digest != v.digest {
            anyhow::bail!(
                "rebuilding commit {} gave {digest}, not the released {}: the image is not what its provenance says (or the build is not reproducible here: same toolchain and profile?)",
                v.commit,
                v.digest
            );
        }
        if !cx.json() {
            println!(
                "  ✓ rebuilt from commit {} ({} profile): the same digest, byte for byte",
                v.commit, v.profile
            );
        }
        cx.emit(&doc(Some(&digest)));
    }
    Ok(ExitCode::SUCCESS)
}
