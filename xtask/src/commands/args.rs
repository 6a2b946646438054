//! Arguments several commands share, and how the command line's words map
//! onto the ground floor's types (which know nothing of clap).

use clap::Args;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};

use anyhow::{Result, bail};

use crate::build::platform::Platform;
use crate::build::toolchain::Kind;
use crate::build::{Destination, Profile};
use crate::ground::runner::{Progress, Runner};
use crate::ground::settings::TargetName;

use super::invocation::Invocation;
use crate::targets::clusters;
use crate::targets::kube::Kube;

#[derive(Args, Clone, Debug)]
pub struct TargetArg {
    /// Where to run (default: `default_target` in xtask.toml)
    #[arg(long, short = 't', global = true, value_parser = target_parser())]
    pub target: Option<TargetName>,
}

/// `--target`'s values, each with what it is.
pub fn target_parser() -> impl TypedValueParser<Value = TargetName> {
    PossibleValuesParser::new(
        crate::targets::all()
            .into_iter()
            .map(|(t, about)| PossibleValue::new(t.as_str()).help(about)),
    )
    .try_map(|s| crate::targets::named(&s))
}

/// `--progress`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    Auto,
    Always,
    Never,
}

impl From<ProgressArg> for Progress {
    fn from(p: ProgressArg) -> Self {
        match p {
            ProgressArg::Auto => Progress::Auto,
            ProgressArg::Always => Progress::Always,
            ProgressArg::Never => Progress::Never,
        }
    }
}

/// `--output`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputArg {
    Text,
    Json,
}

impl From<OutputArg> for crate::ground::runner::Format {
    fn from(o: OutputArg) -> Self {
        match o {
            OutputArg::Text => Self::Text,
            OutputArg::Json => Self::Json,
        }
    }
}

/// The Kubernetes target Seldon Core runs on, or an error saying it needs one.
pub fn seldon_target(cx: &Invocation, name: TargetName) -> Result<Kube> {
    match cx.kube_for(name)? {
        Some(kube) => Ok(kube),
        None => {
            bail!(
                "Seldon Core runs on Kubernetes: use --target {} (not {name})",
                clusters::names()
            )
        }
    }
}

/// `--profile`: the cargo profile to build the services with.
#[derive(Args, Clone, Debug)]
pub struct ProfileArg {
    /// Cargo profile: release (tuned for build time) or dist (tuned for size)
    /// [default: release, dist where images are pushed]
    #[arg(long, value_enum, global = true)]
    pub profile: Option<ProfileName>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileName {
    Release,
    Dist,
}

impl ProfileArg {
    /// The one given, else `default`.
    pub fn or(&self, default: Profile) -> Profile {
        match self.profile {
            Some(ProfileName::Release) => Profile::Release,
            Some(ProfileName::Dist) => Profile::Dist,
            None => default,
        }
    }
}

/// The lock of `target` in this checkout for a command that changes what
/// runs there (`ground::lock`); none under --dry-run, which changes nothing.
///
/// # Errors
/// A dev loop holds it, or (for a loop) another run does.
pub fn lock_target(
    cx: &super::invocation::Invocation,
    target: TargetName,
    kind: crate::ground::lock::Kind,
) -> Result<Option<crate::ground::lock::RunLock>> {
    use crate::ground::lock::{RunLock, command_line};
    let path = RunLock::path(&cx.config.local.run_dir, target.as_str());
    cx.runner
        .unless_dry_run(|| RunLock::take(&path, kind, &command_line()))
}

/// `--toolchain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolchainArg {
    /// Native on a Linux host of the platform's CPU, else cargo zigbuild, else cross
    Auto,
    /// cargo build: this Linux host's own CPU, linked statically
    Native,
    /// cargo zigbuild: static musl binaries (or --glibc), zig as linker
    Zigbuild,
    /// cross build: static musl binaries, in cross's container
    Cross,
    /// cargo build in the pinned Rust image, inside `docker build` (a multi-stage Dockerfile):
    /// images only (deploy, image build|load|push); --builder docker's default where this host
    /// cannot build the platform
    Docker,
}

impl From<ToolchainArg> for Kind {
    fn from(t: ToolchainArg) -> Self {
        match t {
            ToolchainArg::Auto => Self::Auto,
            ToolchainArg::Native => Self::Native,
            ToolchainArg::Zigbuild => Self::Zigbuild,
            ToolchainArg::Cross => Self::Cross,
            ToolchainArg::Docker => Self::Docker,
        }
    }
}

/// `--platform`, `--toolchain`, `--glibc`: which Linux binaries to build,
/// and how.
#[derive(Args, Clone, Debug)]
pub struct PlatformArg {
    /// The images' platform, os/arch: linux/amd64 or linux/arm64 [default: where the images run:
    /// the target's machines (deploy), the engine or node (image load); else this host's CPU].
    /// image build, image push and build take several, comma-separated (in any order): an OCI
    /// image index
    #[arg(long, value_name = "OS/ARCH[,…]", value_parser = Platform::parse, value_delimiter = ',',
          global = true)]
    pub platform: Vec<Platform>,
    /// How its binaries are built
    #[arg(long, value_enum, default_value = "auto", global = true)]
    pub toolchain: ToolchainArg,
    /// With --toolchain zigbuild: link against this glibc version (2.17), dynamically, instead of musl
    #[arg(long, value_name = "VERSION", value_parser = crate::build::toolchain::glibc_version,
          global = true)]
    pub glibc: Option<String>,
}

impl PlatformArg {
    /// One destination per platform given (each once, amd64 before arm64),
    /// or this host's alone: this host's own binaries unless a platform,
    /// toolchain or glibc is given; then `toolchain::pick` with what this
    /// host has installed. A dry run goes on past what this host lacks:
    /// each refusal goes to `runner` (a blocker under `--dry-run`, else
    /// the error) and that platform is planned with the toolchain the
    /// remedy installs (`Destination::planned`).
    ///
    /// # Errors
    /// A refusal, outside a dry run.
    pub fn destinations_or_planned(&self, runner: &Runner) -> Result<Vec<Destination>> {
        self.platforms()
            .into_iter()
            .map(|p| self.destination_or_planned(runner, p))
            .collect()
    }

    /// As `destination_on`, going on past a refusal as
    /// `destinations_or_planned` does; `why` is said before the refusal.
    ///
    /// # Errors
    /// Several platforms given; a refusal, outside a dry run.
    pub fn destination_on_or_planned(
        &self,
        runner: &Runner,
        runs_on: Option<Platform>,
        why: Option<String>,
    ) -> Result<Destination> {
        let platform = self.one()?.or(runs_on);
        match self.destination_for(platform) {
            Ok(to) => Ok(to),
            Err(e) => {
                runner.precondition(match why {
                    Some(why) => e.context(why),
                    None => e,
                })?;
                Ok(self.planned_for(platform))
            }
        }
    }

    /// The docker builder's destination for its one platform (`runs_on`
    /// unless `--platform` says): this host's own build where it can make
    /// it, else the docker builder compiles in its container
    /// (`Toolchain::Docker`). None where `--toolchain` or `--glibc` asks
    /// for a toolchain: then that one is picked as for any builder.
    ///
    /// # Errors
    /// Several platforms given.
    pub fn docker_builder_destination(
        &self,
        runs_on: Option<Platform>,
    ) -> Result<Option<Destination>> {
        if self.toolchain != ToolchainArg::Auto || self.glibc.is_some() {
            return Ok(None);
        }
        let platform = self.one()?.or(runs_on);
        Ok(Some(
            Destination::pick(platform, Kind::Auto, None)
                .ok()
                .filter(|d| d.toolchain != crate::build::toolchain::Toolchain::Host)
                .unwrap_or_else(|| {
                    let platform = platform.unwrap_or_else(crate::build::host_platform);
                    Destination::planned(Some(platform), Kind::Docker, None)
                }),
        ))
    }

    /// The platforms given, each once, in one order whatever the order
    /// given (an index's digest depends on its manifests' order); `[None]`
    /// (this host's) when none is.
    fn platforms(&self) -> Vec<Option<Platform>> {
        let mut platforms: Vec<Platform> = self.platform.clone();
        platforms.sort_unstable();
        platforms.dedup();
        if platforms.is_empty() {
            return vec![None];
        }
        platforms.into_iter().map(Some).collect()
    }

    fn destination_or_planned(&self, runner: &Runner, p: Option<Platform>) -> Result<Destination> {
        match self.destination_for(p) {
            Ok(to) => Ok(to),
            Err(e) => {
                runner.precondition(e)?;
                Ok(self.planned_for(p))
            }
        }
    }

    fn planned_for(&self, platform: Option<Platform>) -> Destination {
        Destination::planned(platform, self.toolchain.into(), self.glibc.as_deref())
    }

    /// The one platform given, if any.
    ///
    /// # Errors
    /// Several were given.
    pub fn one(&self) -> Result<Option<Platform>> {
        match self.platform.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            [first, rest @ ..] if rest.iter().all(|p| p == first) => Ok(Some(*first)),
            several => {
                let names: Vec<String> = several.iter().map(ToString::to_string).collect();
                bail!(
                    "--platform {}: this command runs images of one platform; an image index of \
                     several is `cargo xtask image build` or `image push` with that --platform",
                    names.join(",")
                )
            }
        }
    }

    /// What to build for images that run on `runs_on` unless `--platform`
    /// says otherwise: this host's own native build where that is the
    /// platform, else `toolchain::pick`.
    ///
    /// # Errors
    /// Several platforms given (this command runs one); what
    /// `toolchain::pick` refuses, with the commands that would help.
    pub fn destination_on(&self, runs_on: Option<Platform>) -> Result<Destination> {
        let platform = self.one()?.or(runs_on);
        self.destination_for(platform)
    }

    /// The destination for `platform` (None: this host's).
    fn destination_for(&self, platform: Option<Platform>) -> Result<Destination> {
        Destination::pick(platform, self.toolchain.into(), self.glibc.as_deref())
    }
}

/// Says, before a build in `docker build` (`--toolchain docker`) for
/// another platform than the container engine's, that its build stage
/// runs under emulation: only where the engine has it (binfmt_misc with
/// QEMU, as Docker Desktop does), and several times slower.
pub fn note_emulation(cx: &super::invocation::Invocation, to: &[Destination]) {
    let in_docker = to.iter().filter(|d| {
        matches!(
            d.toolchain,
            crate::build::toolchain::Toolchain::Docker { .. }
        )
    });
    for d in in_docker {
        if let Ok(Some(engine)) = crate::targets::engine_platform(cx)
            && engine != d.platform
        {
            eprintln!(
                "note: the container engine runs {engine}: compiling for {} in `docker build` \
                 runs under emulation, which the engine must have (binfmt_misc with QEMU; \
                 Docker Desktop has it) and which is several times slower",
                d.platform
            );
        }
    }
}
