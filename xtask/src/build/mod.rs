//! Building the service binaries: release mode, one cargo invocation,
//! located through cargo's own JSON messages (so a custom CARGO_TARGET_DIR
//! works). On Linux they are statically linked (`--target <host>`, and
//! crt-static on the binaries alone: see `link`), so the very same binaries
//! run locally and in images built on an empty base, and the dependencies
//! also serve the dynamically linked model server that loads ONNX Runtime,
//! which then costs a link, not a second build.

mod built;
pub mod link;
pub mod models;
pub mod onnxruntime;
pub mod platform;
pub mod toolchain;
pub mod workspace;

pub use built::{Built, Profile, cargo};

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::cmd;

use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::files;
use crate::ground::services::{self, ServiceSpec};
use crate::ground::settings::{ModelName, Runtime, ServiceKind};
use toolchain::Toolchain;

/// The target triple static binaries are built for, on hosts that can.
pub fn static_target() -> Option<&'static str> {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => Some("x86_64-unknown-linux-gnu"),
        ("linux", "aarch64") => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}

pub use platform::host_platform;

/// `cargo build --profile <profile> [--target <host>]
/// --message-format=json-render-diagnostics`, with the xtask as rustc
/// wrapper on a host that links statically (`link`); the caller adds the
/// packages, binaries and features.
pub fn static_command(cx: &Ctx, profile: Profile) -> Command {
    command_for(cx, profile, &Toolchain::for_host())
}

/// `toolchain`'s build (`cargo build --target T`, `cargo zigbuild …`,
/// `cross build …`) with `--profile <profile>
/// --message-format=json-render-diagnostics`, the xtask as rustc wrapper
/// for the native static build (`link`), and the toolchain's own target
/// directory where it has one.
fn command_for(cx: &Ctx, profile: Profile, toolchain: &Toolchain) -> Command {
    let (program, args) = toolchain.command(&cargo(), profile.as_str());
    let mut cmd: Command = cmd!(
        cx.sh,
        "{program} {args...} --message-format=json-render-diagnostics"
    )
    .into();
    if matches!(toolchain, Toolchain::Native { .. }) {
        wrapped(&mut cmd);
    }
    if let Some(dir) = toolchain.own_target_dir(&target_dir(cx)) {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    cmd
}

/// `cargo rustc` of the model server alone, linked dynamically (`link`'s
/// marker on a host that links statically).
fn dynamic_server_command(cx: &Ctx, profile: Profile) -> Command {
    let cargo = cargo();
    let profile = profile.as_str();
    let server = services::MODEL_SERVER;
    let target = static_target().map(|t| ["--target", t]);
    let target = target.iter().flatten();
    let marker = static_target().map(|_| link::DYNAMIC_MARKER);
    let marker = marker.iter().flatten();
    let mut cmd: Command = cmd!(
        cx.sh,
        "{cargo} rustc --profile {profile} {target...} --package {server} --bin {server} --message-format=json-render-diagnostics -- {marker...}"
    )
    .into();
    wrapped(&mut cmd);
    cmd
}

/// The xtask as `RUSTC_WORKSPACE_WRAPPER` of `cmd`, where binaries are
/// linked statically.
fn wrapped(cmd: &mut Command) {
    if static_target().is_none() {
        return;
    }
    if let Ok(me) = std::env::current_exe() {
        cmd.env("RUSTC_WORKSPACE_WRAPPER", me)
            .env(link::WRAPPER_ENV, "1");
    }
}

/// Cargo's target directory (CARGO_TARGET_DIR honoured).
pub fn target_dir(cx: &Ctx) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| cx.root.join("target"), Into::into)
}

/// Where `static_command` puts its binaries.
pub fn release_dir(cx: &Ctx, profile: Profile) -> PathBuf {
    profile_dir(&target_dir(cx), profile)
}

/// What one cargo invocation builds: every service binary, and the
/// features of their packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// (package, binary), deduplicated, in the services' order.
    pub binaries: Vec<(String, String)>,
    /// `--no-default-features --features P/default,…` when the model server
    /// is built without its ONNX runtime; otherwise empty.
    pub features: Vec<String>,
}

impl Selection {
    /// What `specs` need (every service of the settings, for a deploy; the
    /// dev loop's services alone): their binaries, and the model server's
    /// ONNX runtime only if one of them uses it; none for models on ONNX
    /// Runtime. No service running the model server with an ONNX model
    /// (iris, onnx) builds it without its `onnx` feature: tract is most of a
    /// cold build (minutes on two cores). Cargo turns off default features
    /// for every package of an invocation at once, so the other packages'
    /// `default` features (from `packages`) are named back.
    pub fn of_specs(specs: &[ServiceSpec], packages: &[workspace::Package]) -> Self {
        // Models on ONNX Runtime run the dynamically linked model server,
        // built on its own (`onnxruntime_server`).
        let specs: Vec<&ServiceSpec> = specs
            .iter()
            .filter(|s| s.runtime() != Runtime::Onnxruntime)
            .collect();
        let mut binaries: Vec<(String, String)> = Vec::new();
        for s in &specs {
            let key = (s.package.clone(), s.bin.clone());
            if !binaries.contains(&key) {
                binaries.push(key);
            }
        }
        let serves_onnx = specs.iter().any(|s| {
            s.package == services::MODEL_SERVER
                && !matches!(&s.settings.kind, ServiceKind::Model(m) if m.model == ModelName::Identity)
        });
        let mut features = Vec::new();
        if !serves_onnx && binaries.iter().any(|(p, _)| p == services::MODEL_SERVER) {
            let defaults: Vec<String> = packages
                .iter()
                .filter(|p| p.name != services::MODEL_SERVER && p.has_default_features)
                .filter(|p| binaries.iter().any(|(b, _)| *b == p.name))
                .map(|p| format!("{}/default", p.name))
                .collect();
            features.push("--no-default-features".to_string());
            if !defaults.is_empty() {
                features.push("--features".to_string());
                features.push(defaults.join(","));
            }
        }
        Self { binaries, features }
    }

    /// The packages, each once, in order.
    pub fn packages(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (p, _) in &self.binaries {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }

    /// `--package P --bin B …` and the feature flags, for `cargo build`.
    pub fn build_args(&self) -> Vec<String> {
        self.binaries
            .iter()
            .flat_map(|(p, b)| ["--package".into(), p.clone(), "--bin".into(), b.clone()])
            .chain(self.features.iter().cloned())
            .collect()
    }

    /// `--package P …` and the feature flags, for `cargo tree` (no --bin).
    pub fn package_args(&self) -> Vec<String> {
        self.packages()
            .into_iter()
            .flat_map(|p| ["--package".into(), p])
            .chain(self.features.iter().cloned())
            .collect()
    }
}

/// The selection of `cargo xtask deploy`, of `all` (every service of the
/// settings); reads the workspace's metadata.
///
/// # Errors
/// `cargo metadata` failing.
pub fn selection(cx: &Ctx, all: &[ServiceSpec]) -> Result<Selection> {
    Ok(Selection::of_specs(all, &workspace::packages(cx)?))
}

/// Builds `specs`' binaries, after checking their packages exist, then
/// checks their ONNX models load (`models::check`). Cargo builds `all`
/// (every service of the settings) at once, as a deploy does (feature
/// unification makes a subset's binaries differ from the same sources
/// built together).
///
/// # Errors
/// A package or binary not in the workspace, a failed build, a model that
/// cannot be served.
pub fn build(
    cx: &Ctx,
    all: &[ServiceSpec],
    specs: &[ServiceSpec],
    profile: Profile,
) -> Result<Vec<Built>> {
    build_for(cx, all, specs, profile, &Destination::host())
}

/// The platform binaries are built for and the toolchain that builds
/// them (`toolchain::pick`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub platform: Platform,
    pub toolchain: Toolchain,
}

impl Destination {
    /// This host's own binaries: native and static on Linux, to run here
    /// and in images alike.
    pub fn host() -> Self {
        Self {
            platform: host_platform(),
            toolchain: Toolchain::for_host(),
        }
    }

    /// For `platform` (None: this host's) with the toolchain of `kind`
    /// (`--toolchain`) and `glibc` (`--glibc`): this host's own build where
    /// it is native and nothing else was asked, else `toolchain::pick`
    /// with what this host has installed.
    ///
    /// # Errors
    /// What `toolchain::pick` refuses, with the commands that would help.
    pub fn pick(
        platform: Option<Platform>,
        kind: toolchain::Kind,
        glibc: Option<&str>,
    ) -> Result<Self> {
        let host = Self::host();
        let native_here = matches!(host.toolchain, Toolchain::Native { .. });
        if platform.is_none_or(|p| p == host.platform && native_here)
            && kind == toolchain::Kind::Auto
            && glibc.is_none()
        {
            return Ok(host);
        }
        let platform = platform.unwrap_or(host.platform);
        let toolchain = toolchain::pick(
            kind,
            toolchain::Host::here(),
            platform,
            glibc,
            &toolchain::Installed::detect(),
        )?;
        Ok(Self {
            platform,
            toolchain,
        })
    }
}

impl Destination {
    /// What `pick` would give for `platform` (None: this host's) once
    /// this host has what it lacks: a dry run that lists the missing
    /// tools as blockers plans this build, not this host's own.
    pub fn planned(platform: Option<Platform>, kind: toolchain::Kind, glibc: Option<&str>) -> Self {
        let host = Self::host();
        if platform.is_none() && kind == toolchain::Kind::Auto && glibc.is_none() {
            return host;
        }
        let platform = platform.unwrap_or(host.platform);
        Self {
            platform,
            toolchain: toolchain::planned(kind, toolchain::Host::here(), platform, glibc),
        }
    }
}

/// As `build`, for `to`'s platform with its toolchain. The models are
/// checked only when the binaries run here (another platform's model
/// server cannot load them on this host).
///
/// # Errors
/// As `build`; a service on ONNX Runtime built with another toolchain
/// than the native one.
pub fn build_for(
    cx: &Ctx,
    all: &[ServiceSpec],
    specs: &[ServiceSpec],
    profile: Profile,
    to: &Destination,
) -> Result<Vec<Built>> {
    let packages = workspace::packages(cx)?;
    workspace::check(all, &packages)?;
    let selection = Selection::of_specs(all, &packages);
    let target = BuildTarget { dir: None, to };
    if *to != Destination::host() {
        eprintln!("==> binaries for {}: {}", to.platform, to.toolchain);
    }
    let built = build_checked(cx, specs, profile, &target, &selection)?;
    if *to == Destination::host() {
        models::check(cx, &built)?;
    } else {
        check_built(cx, &built, to)?;
    }
    Ok(built)
}

/// What a build makes binaries for, and where.
struct BuildTarget<'a> {
    /// Another target directory than cargo's own (a release's second
    /// build).
    dir: Option<&'a std::path::Path>,
    to: &'a Destination,
}

impl BuildTarget<'_> {
    /// The target directory the build writes (its toolchain's own one
    /// under cargo's where it has one).
    fn directory(&self, cx: &Ctx) -> PathBuf {
        let base = self
            .dir
            .map_or_else(|| target_dir(cx), std::path::Path::to_path_buf);
        self.to.toolchain.own_target_dir(&base).unwrap_or(base)
    }

    /// Where the build's binaries are.
    fn out_dir(&self, cx: &Ctx, profile: Profile) -> PathBuf {
        self.to
            .toolchain
            .out_dir(&self.directory(cx), profile.as_str())
    }
}

/// As `build_for`, but cargo builds only what `specs` need (`dev
/// SERVICE`: the loop's services, not every service of the settings).
///
/// # Errors
/// As `build_for`.
pub fn build_only(
    cx: &Ctx,
    specs: &[ServiceSpec],
    profile: Profile,
    to: &Destination,
) -> Result<Vec<Built>> {
    let packages = workspace::packages(cx)?;
    workspace::check(specs, &packages)?;
    let built = build_checked(
        cx,
        specs,
        profile,
        &BuildTarget { dir: None, to },
        &Selection::of_specs(specs, &packages),
    )?;
    if *to == Destination::host() {
        models::check(cx, &built)?;
    } else {
        check_built(cx, &built, to)?;
    }
    Ok(built)
}

/// What another toolchain made, checked against `to`'s platform at once,
/// not when an image is assembled from it.
fn check_built(cx: &Ctx, built: &[Built], to: &Destination) -> Result<()> {
    cx.runner.unless_dry_run(|| {
        built.iter().try_for_each(|b| {
            let bytes = std::fs::read(&b.binary)
                .with_context(|| format!("cannot read {}", b.binary.display()))?;
            crate::build::platform::check_binary(
                &format!("{} (built by {})", b.binary.display(), to.toolchain),
                &bytes,
                to.platform,
            )
        })
    })?;
    Ok(())
}

/// Builds `specs`' binaries as `build` does, in another target directory
/// (a release's second, independent build).
///
/// # Errors
/// A failed build.
pub fn build_in(
    cx: &Ctx,
    all: &[ServiceSpec],
    specs: &[ServiceSpec],
    profile: Profile,
    target_dir: &std::path::Path,
) -> Result<Vec<Built>> {
    build_checked(
        cx,
        specs,
        profile,
        &BuildTarget {
            dir: Some(target_dir),
            to: &Destination::host(),
        },
        &selection(cx, all)?,
    )
}

/// The model server's binary alone (for `model add`, which loads a model
/// before any service uses it: a broken service crate elsewhere does not
/// stop it).
///
/// # Errors
/// A failed build; None under --dry-run.
pub fn model_server(cx: &Ctx) -> Result<Option<PathBuf>> {
    let server = services::MODEL_SERVER;
    let mut cmd = static_command(cx, Profile::Release);
    cmd.args(["--package", server, "--bin", server]);
    let out = cx.runner.run(cmd, "building the model server")?;
    let Some(executables) = cx.runner.unless_dry_run(|| Ok(executables(&out.stdout)))? else {
        return Ok(None);
    };
    match executables.into_iter().find(|(n, _)| n == server) {
        Some((_, path)) => Ok(Some(path)),
        None => bail!("cargo built no `{server}` binary"),
    }
}

/// One cargo invocation for `selection`; the executables it made, or None
/// under --dry-run.
fn cargo_build(
    cx: &Ctx,
    profile: Profile,
    target: &BuildTarget<'_>,
    selection: &Selection,
) -> Result<Option<Vec<(String, PathBuf)>>> {
    if selection.binaries.is_empty() {
        // Every service is a model on ONNX Runtime (and without packages
        // cargo would build the workspace's default members).
        return Ok(Some(Vec::new()));
    }
    let out_dir = target.out_dir(cx, profile);
    cx.runner.unless_dry_run(|| {
        eprintln!("{}", announce(selection, profile, &out_dir));
        Ok(())
    })?;
    // Held from the build until the binaries are copied out (below).
    let lock = cx.runner.unless_dry_run(|| output_lock(&out_dir))?;
    let mut cmd = command_for(cx, profile, &target.to.toolchain);
    cmd.args(selection.build_args());
    if target.dir.is_some() {
        cmd.env("CARGO_TARGET_DIR", target.directory(cx));
    }
    let out = cx.runner.run(cmd, "building the services")?;
    let kept = cx.runner.unless_dry_run(|| {
        let made = if target.to.toolchain.reports_host_paths() {
            executables(&out.stdout)
        } else {
            let made: Vec<(String, PathBuf)> = selection
                .binaries
                .iter()
                .map(|(_, bin)| (bin.clone(), out_dir.join(bin)))
                .collect();
            if let Some((bin, path)) = made.iter().find(|(_, path)| !path.is_file()) {
                bail!(
                    "{} succeeded but left no `{bin}` at {}: is it the cross-compiling tool \
                     it claims to be?",
                    target.to.toolchain,
                    path.display()
                );
            }
            made
        };
        keep(
            made,
            &out_dir.join("kube-mlops").join(files::path_id(&cx.root)),
        )
    });
    drop(lock);
    kept
}

/// An exclusive lock on `<profile dir>/kube-mlops-build.lock` (cargo's
/// own lock is per profile directory too), held while a build's binaries
/// are made and copied out. Cargo holds its lock only while it builds; the binaries it leaves under their
/// plain names (`release/test-api`) are overwritten by the next build that
/// shares the directory — another checkout's with `CARGO_TARGET_DIR` set,
/// whose binaries differ — before the first one has read its own (seen as
/// a deploy that rolled out a changed image twice in a row).
fn output_lock(dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("kube-mlops-build.lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(file)
}

/// Copies each executable into `dir` (written whole over the old copy,
/// which may be running: a running binary cannot be truncated); the
/// copies' paths.
fn keep(
    executables: Vec<(String, PathBuf)>,
    dir: &std::path::Path,
) -> Result<Vec<(String, PathBuf)>> {
    executables
        .into_iter()
        .map(|(name, path)| {
            let file = path
                .file_name()
                .map_or_else(|| name.clone().into(), ToOwned::to_owned);
            let copy = dir.join(&file);
            files::copy_whole(&path, &copy)?;
            Ok((name, copy))
        })
        .collect()
}

/// The line said before a build: what it builds, in which profile and why
/// that one, and, for the first build in that profile (no fingerprints yet
/// in `out_dir`), that it compiles every dependency and about how long
/// that takes here.
fn announce(selection: &Selection, profile: Profile, out_dir: &std::path::Path) -> String {
    let what = selection.packages().join(", ");
    let why = match profile {
        Profile::Release => "release profile: tuned for build time",
        Profile::Dist => {
            "dist profile: small images to push (opt-level s, fat LTO; --profile release builds faster)"
        }
    };
    if out_dir.join(".fingerprint").is_dir() {
        return format!("==> building {what} ({why})");
    }
    let onnx = selection.features.is_empty()
        && selection
            .packages()
            .iter()
            .any(|p| p == services::MODEL_SERVER);
    format!(
        "==> building {what} ({why}); the first build in this profile compiles every dependency{}: \
         {} (later builds take seconds)",
        if onnx {
            ", the model server's ONNX runtime (tract) among them"
        } else {
            ""
        },
        first_build_time(profile, onnx)
    )
}

/// About how long a first build in `profile` takes here, said as "about N
/// min on this machine's C cores". Measured on two cores (docs/figures.md,
/// the cold builds), scaled by this machine's.
fn first_build_time(profile: Profile, onnx: bool) -> String {
    let two_core_minutes: f64 = match (profile, onnx) {
        (Profile::Release, false) => 1.5,
        (Profile::Release, true) => 5.0,
        (Profile::Dist, false) => 3.0,
        (Profile::Dist, true) => 6.0,
    };
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let minutes = (two_core_minutes * 2.0 / cores as f64).max(0.5);
    format!("about {minutes:.0} min on this machine's {cores} cores")
}

/// The line said before the model server's dynamic link when no build in
/// `out_dir` has compiled its ONNX crates yet (the static build leaves
/// them out when no service runs a model on tract): that link is then a
/// first build of tract and `ort`, not seconds.
fn announce_dynamic(profile: Profile, out_dir: &std::path::Path) -> Option<String> {
    let compiled = std::fs::read_dir(out_dir.join(".fingerprint")).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("tract-onnx-"))
    });
    (!compiled).then(|| {
        format!(
            "==> the model server for ONNX Runtime needs the ONNX crates (tract's graph reader, \
             ort), which no build in the {} profile has compiled yet: {} (later links take \
             seconds)",
            profile.as_str(),
            first_build_time(profile, true)
        )
    })
}

/// Where cargo puts `profile`'s binaries under `target`.
fn profile_dir(target: &std::path::Path, profile: Profile) -> PathBuf {
    match static_target() {
        Some(t) => target.join(t).join(profile.as_str()),
        None => target.join(profile.as_str()),
    }
}

fn build_checked(
    cx: &Ctx,
    specs: &[ServiceSpec],
    profile: Profile,
    target: &BuildTarget<'_>,
    selection: &Selection,
) -> Result<Vec<Built>> {
    if let Toolchain::Docker { .. } = target.to.toolchain {
        bail!(
            "--toolchain docker compiles inside `docker build`, so it makes images, not binaries \
             on this host: use it with `cargo xtask deploy` (the docker target or a cluster) or \
             `image build|load|push`, or give another --toolchain"
        );
    }
    if let Some(s) = specs.iter().find(|s| s.runtime() == Runtime::Onnxruntime)
        && !matches!(
            target.to.toolchain,
            Toolchain::Native { .. } | Toolchain::Host
        )
    {
        let fix = if target.to.platform == host_platform() && std::env::consts::OS == "linux" {
            "drop --toolchain (this host builds it natively)"
        } else {
            "build on a Linux host of that CPU"
        };
        bail!(
            "services.{}: runtime = \"onnxruntime\" is built natively only (the model server \
             links against the C runtime ONNX Runtime's library needs), and this host builds \
             {} with {}: {fix}, or use runtime = \"tract\"",
            s.name,
            target.to.platform,
            target.to.toolchain
        );
    }
    let built = cargo_build(cx, profile, target, selection)?;
    let onnxruntime = if specs.iter().any(|s| s.runtime() == Runtime::Onnxruntime) {
        Some(onnxruntime_server(cx, profile, target.dir)?)
    } else {
        None
    };
    // Under --dry-run nothing was built: name the files a real build makes.
    let dir = target.out_dir(cx, profile);
    specs
        .iter()
        .map(|s| {
            if s.runtime() == Runtime::Onnxruntime
                && let Some((binary, library)) = &onnxruntime
            {
                let mut spec = s.clone();
                spec.host_env
                    .push(("ORT_DYLIB_PATH".into(), library.display().to_string()));
                return Ok(Built {
                    spec,
                    binary: binary.clone(),
                    runtime_library: Some(library.clone()),
                    platform: target.to.platform,
                });
            }
            let binary = match &built {
                None => dir.join(&s.bin),
                Some(executables) => match executables.iter().find(|(name, _)| *name == s.bin) {
                    Some((_, path)) => path.clone(),
                    None => bail!("cargo built no `{}` binary for {}", s.bin, s.name),
                },
            };
            Ok(Built {
                spec: s.clone(),
                binary,
                runtime_library: None,
                platform: target.to.platform,
            })
        })
        .collect()
}

/// The model server linked dynamically and the ONNX Runtime library it
/// loads (for `model add`, which measures both runtimes): their paths, or
/// None under --dry-run.
///
/// # Errors
/// A failed build or download.
pub fn onnxruntime_model_server(cx: &Ctx) -> Result<Option<(PathBuf, PathBuf)>> {
    let paths = onnxruntime_server(cx, Profile::Release, None)?;
    cx.runner.unless_dry_run(|| Ok(paths))
}

/// For the services with `runtime = "onnxruntime"`: the model server
/// linked against the system's C runtime (a static one cannot load a
/// shared library), and the ONNX Runtime library it loads
/// (`onnxruntime::provide`). Their paths. It is the static build's model
/// server with a dynamic final link (`link`): the dependencies and
/// libraries compiled for the static binaries serve it too.
fn onnxruntime_server(
    cx: &Ctx,
    profile: Profile,
    target_dir: Option<&std::path::Path>,
) -> Result<(PathBuf, PathBuf)> {
    let target = target_dir.map_or_else(|| self::target_dir(cx), std::path::Path::to_path_buf);
    let server = services::MODEL_SERVER;
    let mut cmd = dynamic_server_command(cx, profile);
    if let Some(dir) = target_dir {
        cmd.env("CARGO_TARGET_DIR", dir);
    }
    let name = profile.as_str();
    let out_dir = target_dir.map_or_else(|| release_dir(cx, profile), |d| profile_dir(d, profile));
    cx.runner.step(format!(
        "link the model server dynamically, for ONNX Runtime ({name} profile, into {})",
        out_dir.display()
    ));
    let lock = cx.runner.unless_dry_run(|| output_lock(&out_dir))?;
    if let Some(line) = cx
        .runner
        .unless_dry_run(|| Ok(announce_dynamic(profile, &out_dir)))?
        .flatten()
    {
        eprintln!("{line}");
    }
    let out = cx
        .runner
        .run(cmd, "building the model server for ONNX Runtime")?;
    let kept = cx.runner.unless_dry_run(|| {
        keep(
            executables(&out.stdout),
            &out_dir
                .join("kube-mlops")
                .join(files::path_id(&cx.root))
                .join("onnxruntime"),
        )
    })?;
    drop(lock);
    let binary = match kept {
        None => out_dir.join(server),
        Some(executables) => executables
            .into_iter()
            .find(|(n, _)| n == server)
            .map(|(_, path)| path)
            .with_context(|| format!("cargo built no `{server}` binary"))?,
    };
    let arch = host_platform().oci_arch();
    let library = onnxruntime::kept_at(&target, arch);
    if library.is_file() {
        return Ok((binary, library));
    }
    let provided = cx.runner.effect(
        format!(
            "download ONNX Runtime {} ({arch}) from PyPI, pinned by SHA-256, into {}",
            onnxruntime::VERSION,
            library.display()
        ),
        || onnxruntime::provide(&target, arch),
    )?;
    Ok((binary, provided.unwrap_or(library)))
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    executable: Option<PathBuf>,
    #[serde(default)]
    target: Option<Target>,
}

#[derive(Deserialize)]
struct Target {
    name: String,
}

/// (binary name, path) for each executable in cargo's JSON messages.
fn executables(stdout: &str) -> Vec<(String, PathBuf)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Message>(l).ok())
        .filter(|m| m.reason == "compiler-artifact")
        .filter_map(|m| Some((m.target?.name, m.executable?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, has_default_features: bool) -> workspace::Package {
        workspace::Package {
            name: name.into(),
            bins: vec![name.into()],
            manifest: PathBuf::from(format!("/w/services/{name}/Cargo.toml")),
            path_deps: Vec::new(),
            has_default_features,
        }
    }

    #[test]
    fn the_model_server_is_built_without_onnx_unless_a_service_needs_it() -> Result<()> {
        let root = std::path::Path::new("/w");
        let packages = [
            package("test-api", false),
            package("model-server", true),
            package("wine-api", true),
        ];
        let plain = crate::ground::settings::Config::default();
        let s = Selection::of_specs(&services::all(&plain.services, root), &packages);
        assert_eq!(s.features, ["--no-default-features"]);
        assert_eq!(s.packages(), ["test-api", "model-server"]);
        assert!(
            s.build_args()
                .ends_with(&["--no-default-features".to_string()])
        );

        // A crate with default features keeps them.
        let with_crate = crate::ground::settings::parse(
            "[services.model-server]\n[services.wine-api]\nport = 7000\n",
        )?;
        let s = Selection::of_specs(&services::all(&with_crate.services, root), &packages);
        assert_eq!(
            s.features,
            ["--no-default-features", "--features", "wine-api/default"]
        );
        assert_eq!(
            s.package_args(),
            [
                "--package",
                "model-server",
                "--package",
                "wine-api",
                "--no-default-features",
                "--features",
                "wine-api/default"
            ]
        );

        // iris (or an onnx model) needs the runtime: default features.
        let iris = crate::ground::settings::parse("[services.test-api]\n[services.iris-model]\n")?;
        assert!(
            Selection::of_specs(&services::all(&iris.services, root), &packages)
                .features
                .is_empty()
        );
        // A model on ONNX Runtime runs the dynamically linked server, built
        // apart: the static one is built (without tract) only for identity.
        let ort = crate::ground::settings::parse(
            "[services.model-server]\n[services.iris-model]\nruntime = \"onnxruntime\"\n",
        )?;
        let s = Selection::of_specs(&services::all(&ort.services, root), &packages);
        assert_eq!(s.packages(), ["model-server"]);
        assert_eq!(s.features, ["--no-default-features"]);
        let alone =
            crate::ground::settings::parse("[services.iris-model]\nruntime = \"onnxruntime\"\n")?;
        assert!(
            Selection::of_specs(&services::all(&alone.services, root), &packages)
                .binaries
                .is_empty()
        );
        // No model server at all: nothing to turn off.
        let api = crate::ground::settings::parse("[services.test-api]\n")?;
        assert!(
            Selection::of_specs(&services::all(&api.services, root), &packages)
                .features
                .is_empty()
        );
        Ok(())
    }

    #[test]
    fn dev_of_one_service_builds_only_what_it_needs() -> Result<()> {
        let root = std::path::Path::new("/w");
        let packages = [package("test-api", false), package("model-server", true)];
        let config = crate::ground::settings::parse(
            "[services.test-api]\n[services.iris-model]\n[services.model-server]\n",
        )?;
        let specs = services::all(&config.services, root);
        let api: Vec<ServiceSpec> = specs
            .iter()
            .filter(|s| s.name == "test-api")
            .cloned()
            .collect();
        let s = Selection::of_specs(&api, &packages);
        assert_eq!(s.packages(), ["test-api"]);
        assert!(s.features.is_empty());
        // The identity model alone: the server without its ONNX runtime,
        // though iris (in the settings, not asked for) needs it.
        let identity: Vec<ServiceSpec> = specs
            .iter()
            .filter(|s| s.name == "model-server")
            .cloned()
            .collect();
        let s = Selection::of_specs(&identity, &packages);
        assert_eq!(s.features, ["--no-default-features"]);
        // Deploy builds them all, with the runtime.
        assert!(
            Selection::of_specs(&services::all(&config.services, root), &packages)
                .features
                .is_empty()
        );
        Ok(())
    }

    #[test]
    fn a_first_build_says_what_it_builds_and_about_how_long() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let selection = Selection {
            binaries: vec![("model-server".into(), "model-server".into())],
            features: Vec::new(),
        };
        let first = announce(&selection, Profile::Dist, dir.path());
        assert!(
            first.starts_with("==> building model-server (dist profile"),
            "{first}"
        );
        assert!(first.contains("first build in this profile"), "{first}");
        assert!(first.contains("ONNX runtime"), "{first}");
        assert!(first.contains(" min on this machine's "), "{first}");
        std::fs::create_dir(dir.path().join(".fingerprint"))?;
        let later = announce(&selection, Profile::Release, dir.path());
        assert_eq!(
            later,
            "==> building model-server (release profile: tuned for build time)"
        );
        Ok(())
    }

    #[test]
    fn a_first_dynamic_link_says_it_compiles_the_onnx_crates() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let first = announce_dynamic(Profile::Release, dir.path()).unwrap_or_default();
        assert!(first.contains("no build in the release profile"), "{first}");
        assert!(first.contains(" min on this machine's "), "{first}");
        // A static build without them leaves fingerprints, not these.
        std::fs::create_dir_all(dir.path().join(".fingerprint/serde-0123"))?;
        assert!(announce_dynamic(Profile::Release, dir.path()).is_some());
        std::fs::create_dir_all(dir.path().join(".fingerprint/tract-onnx-4567"))?;
        assert_eq!(announce_dynamic(Profile::Release, dir.path()), None);
        Ok(())
    }

    #[test]
    fn finds_executables_in_cargo_messages() {
        let out = r#"{"reason":"compiler-artifact","target":{"name":"serde"},"executable":null}
{"reason":"compiler-artifact","target":{"name":"test-api"},"executable":"/w/target/release/test-api"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executables(out),
            vec![(
                "test-api".to_string(),
                PathBuf::from("/w/target/release/test-api")
            )]
        );
    }
}
