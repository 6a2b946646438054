//! Building images from source, as source-to-image and ko make them, but
//! reproducible, daemonless by default, non-root on an empty base, and named
//! `<registry>/<name>:<version>-<sha>`. Where they go is `publish`'s part.

pub mod c_runtime;
mod dockerfile;
pub mod naming;
pub mod oci;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::build::platform;
use crate::build::{self, Built};
use crate::ground::context::Ctx;
use crate::ground::conventions::CONTAINER_PORT;
use crate::ground::files;
use crate::ground::services::{MODELS_DIR, ServiceSpec};
use crate::ground::settings::{self, Runtime};
use naming::Provenance;

/// How an image is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Builder {
    /// Assembled in-process, no daemon.
    #[default]
    Native,
    /// `docker build` with the service's committed Dockerfile.
    Docker,
}

/// A built image: one per image name (two services may share one).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Image {
    /// The image name from xtask.toml (`test-api`, `model-server`).
    pub name: String,
    /// `<host>/<account>/<name>:<tag>`.
    pub reference: String,
    pub tag: String,
    pub archive: PathBuf,
    /// Manifest digest, `sha256:...`.
    pub digest: String,
    /// Config digest: the image ID engines show.
    pub id: String,
    /// Uncompressed bytes: config plus layers (each blob once, over every
    /// platform of an index).
    pub size: u64,
    /// The platforms of an image index (`linux/amd64`), in its order;
    /// empty for an image of one platform. An index has no image ID.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
}

/// What images are made with, from the settings: `[images]` (where they
/// go, what the docker builder compiles in), `[registry]` (what names
/// them), and every service of the settings (cargo builds them together,
/// `build::Selection`).
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub images: settings::Images,
    pub registry: settings::Registry,
    pub all: Vec<ServiceSpec>,
}

/// Where the C runtime base's Debian packages are kept once downloaded.
fn packages_dir(cx: &Ctx) -> PathBuf {
    build::target_dir(cx).join("kube-mlops").join("debs")
}

/// Builds the binaries for each of `to`'s platforms, then one image per
/// distinct image name: for one platform, an image archive engines load;
/// for several, an OCI image index over one image per platform (each as
/// one platform alone would make it), in an image layout archive that
/// registries take.
///
/// # Errors
/// No destination; a host that builds its own (non-Linux) binaries; the
/// docker builder for a model on ONNX Runtime or for several platforms; a
/// failed build or assembly.
pub fn build_images(
    cx: &Ctx,
    setup: &Setup,
    specs: &[ServiceSpec],
    builder: Builder,
    profile: build::Profile,
    to: &[build::Destination],
) -> Result<Vec<Image>> {
    if let Some(d) = to
        .iter()
        .find(|d| d.toolchain == build::toolchain::Toolchain::Host)
    {
        bail!(
            "images need Linux binaries, and this host ({}/{}) builds its own: give --platform \
             {} to cross-compile them (`cargo xtask doctor` says what that needs here)",
            std::env::consts::OS,
            std::env::consts::ARCH,
            d.platform
        );
    }
    if let Some(d) = to.iter().find(|d| d.toolchain.links_glibc_dynamically()) {
        cx.runner
            .precondition(anyhow::anyhow!("{}", glibc_refused(&d.toolchain)))?;
    }
    let in_docker =
        |d: &build::Destination| matches!(d.toolchain, build::toolchain::Toolchain::Docker { .. });
    // Refused before minutes of building, not after.
    if (builder == Builder::Docker || to.iter().any(in_docker))
        && let Some(s) = specs.iter().find(|s| s.runtime() == Runtime::Onnxruntime)
    {
        bail!("{}", docker_builder_refuses(&s.name));
    }
    match to {
        [] => bail!("no platform to build images for"),
        // Compiled inside `docker build`: the docker builder, whichever
        // was named.
        [one] if in_docker(one) => from_source(cx, setup, specs, profile, one),
        [one] => {
            // images_from keeps one image per image name.
            let built = build::build_for(cx, &setup.all, specs, profile, one)?;
            images_from(cx, setup, &built, builder)
        }
        several => {
            if builder == Builder::Docker || several.iter().any(in_docker) {
                bail!(
                    "--builder docker builds one platform at a time; an image index of {} is \
                     the native builder's (drop --builder docker)",
                    platform_list(several)
                );
            }
            let built = several
                .iter()
                .map(|d| build::build_for(cx, &setup.all, specs, profile, d))
                .collect::<Result<Vec<_>>>()?;
            indexes_from(cx, setup, &built)
        }
    }
}

/// The docker builder's images of `specs` for `to` (a `Toolchain::Docker`
/// destination), each compiled from the workspace's sources inside `docker
/// build` (`dockerfile::FromSource`); cargo builds every service of the
/// settings there, as on this host, so each image's build stage is the
/// same and the engine's cache builds it once.
///
/// # Errors
/// No git to list the sources; a failed `docker build`; a binary whose
/// platform or linking is not the image's.
fn from_source(
    cx: &Ctx,
    setup: &Setup,
    specs: &[ServiceSpec],
    profile: build::Profile,
    to: &build::Destination,
) -> Result<Vec<Image>> {
    let prov = Provenance::read(cx)?;
    let dir = setup.images.dir.clone();
    let builder = rust_builder(cx, setup.images.rust_builder.as_deref())?;
    let (program, mut cargo) = to.toolchain.command("cargo", profile.as_str());
    cargo.insert(0, program);
    cargo.push("--locked".into());
    cargo.extend(build::selection(cx, &setup.all)?.build_args());
    let sources = workspace_sources(cx)?;
    eprintln!(
        "==> binaries for {}: {} ({builder})",
        to.platform, to.toolchain
    );
    let mut images: Vec<Image> = Vec::new();
    for spec in specs {
        if images.iter().any(|i| i.name == spec.settings.image) {
            continue;
        }
        let b = Built::elsewhere(spec.clone(), to.platform);
        let built = to
            .toolchain
            .out_dir(std::path::Path::new("target"), profile.as_str())
            .join(&spec.bin);
        let dockerfile = dockerfile::FromSource {
            builder: &builder,
            cargo: &cargo,
            built: &built.to_string_lossy(),
            bin: &spec.bin,
            port: CONTAINER_PORT,
        };
        images.push(compiled_in_docker(
            cx,
            &setup.registry,
            &b,
            &dockerfile,
            (&prov, &dir),
            &sources,
        )?);
    }
    Ok(images)
}

/// One image of `from_source`: its context staged, `docker build`, then
/// the binary it made read back from the saved archive and checked as the
/// native builder checks the binaries it packs.
fn compiled_in_docker(
    cx: &Ctx,
    registry: &settings::Registry,
    b: &Built,
    dockerfile: &dockerfile::FromSource<'_>,
    (prov, dir): (&Provenance, &std::path::Path),
    sources: &[PathBuf],
) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    let reference = reference(registry, b, prov);
    let archive = dir.join(format!("{name}.docker.tar"));
    let context = dir.join(format!("{name}-source-context"));
    cx.runner.effect(
        format!(
            "stage the build context {} (the workspace's sources, a multi-stage Dockerfile \
             on {})",
            context.display(),
            dockerfile.builder
        ),
        || {
            dockerfile::stage_from_source(
                &context,
                &dockerfile.text(),
                &model_files(b)?,
                &cx.root,
                sources,
            )
        },
    )?;
    let labels: Vec<(String, String)> = labels(b, prov)?.into_iter().collect();
    dockerfile::build(
        cx,
        &context.join("Dockerfile"),
        &context,
        (&reference, b.platform),
        &labels,
        archive.clone(),
    )
    .with_context(|| {
        format!(
            "compiling {} in {} for {}: where the image cannot be pulled (no network, a \
             mirror), pull it first (`docker pull --platform {} {}`) or set [images] \
             rust_builder to a Rust image this engine has; where the build stage cannot run \
             that platform, the engine needs emulation for it (binfmt_misc with QEMU)",
            b.spec.name, dockerfile.builder, b.platform, b.platform, dockerfile.builder
        )
    })?;
    let built = cx.runner.unless_dry_run(|| {
        let blobs = oci::read_archive(&archive)?;
        let path = format!("usr/local/bin/{}", b.spec.bin);
        let binary = dockerfile::file_in_layers(&blobs.layers, &path)?;
        let what = format!(
            "/{path} of {reference} (service {}, built in {})",
            b.spec.name, dockerfile.builder
        );
        platform::check_binary(&what, &binary, b.platform)?;
        platform::check_static(&what, &binary)?;
        saved(
            &blobs,
            name.clone(),
            reference.clone(),
            prov,
            archive.clone(),
        )
    })?;
    Ok(built.unwrap_or_else(|| placeholder(name, reference, prov, archive)))
}

/// The image the docker builder compiles in: `setting` (`[images]
/// rust_builder`), else Docker Hub's `rust` image of the channel
/// `rust-toolchain.toml` pins.
///
/// # Errors
/// No `rust-toolchain.toml` channel to pin, without the setting.
fn rust_builder(cx: &Ctx, setting: Option<&str>) -> Result<String> {
    if let Some(image) = setting {
        return Ok(image.to_string());
    }
    let file = cx.root.join("rust-toolchain.toml");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {} to pin the Rust image", file.display()))?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("{} is not TOML", file.display()))?;
    let channel = doc
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(toml::Value::as_str)
        .with_context(|| {
            format!(
                "{} pins no toolchain.channel: set [images] rust_builder to the image to \
                 compile in",
                file.display()
            )
        })?;
    Ok(format!("docker.io/library/rust:{channel}"))
}

/// The workspace's files as git lists them (tracked, and untracked ones
/// .gitignore does not leave out), relative to the root: what a build
/// from source copies into its container.
///
/// # Errors
/// Not a git work tree, or no git.
fn workspace_sources(cx: &Ctx) -> Result<Vec<PathBuf>> {
    let root = &cx.root;
    let listed = cx.runner.probe(
        xshell::cmd!(
            cx.sh,
            "git -C {root} ls-files -z --cached --others --exclude-standard"
        ),
        "listing the workspace's sources for the docker builder",
        std::time::Duration::from_secs(30),
    )?;
    if !listed.success {
        return Err(listed.failure_saying(format!(
            "the docker builder copies the workspace's sources as git lists them, and `git \
             ls-files` failed in {}: {}",
            root.display(),
            listed.stderr.trim()
        )));
    }
    // The Rust image is the toolchain: rust-toolchain.toml would have
    // rustup in the build stage download its components (rustfmt, clippy)
    // that a build does not use.
    Ok(listed
        .stdout
        .split('\0')
        .filter(|f| !f.is_empty() && !matches!(*f, "rust-toolchain.toml" | "rust-toolchain"))
        .map(PathBuf::from)
        .collect())
}

/// Why `toolchain` (zigbuild with `--glibc`) cannot build an image's
/// binaries.
pub fn glibc_refused(toolchain: &build::toolchain::Toolchain) -> String {
    format!(
        "{toolchain} links glibc dynamically, and images run on an empty base with no C \
         library: drop --glibc for images (it is for `cargo xtask build`, binaries for a host \
         with that glibc)"
    )
}

/// `linux/amd64, linux/arm64`.
fn platform_list(to: &[build::Destination]) -> String {
    let names: Vec<String> = to.iter().map(|d| d.platform.to_string()).collect();
    names.join(", ")
}

/// One image index per distinct image name, over each platform's build
/// of it (`built`: one list per platform, the same services in each).
fn indexes_from(cx: &Ctx, setup: &Setup, built: &[Vec<Built>]) -> Result<Vec<Image>> {
    let prov = Provenance::read(cx)?;
    let dir = setup.images.dir.clone();
    let Some(first) = built.first() else {
        return Ok(Vec::new());
    };
    let mut names: Vec<&str> = Vec::new();
    for b in first {
        if !names.contains(&b.spec.settings.image.as_str()) {
            names.push(&b.spec.settings.image);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let per_platform = built
                .iter()
                .map(|list| {
                    list.iter()
                        .find(|b| b.spec.settings.image == name)
                        .with_context(|| format!("no build of image {name} for every platform"))
                })
                .collect::<Result<Vec<&Built>>>()?;
            native_index(cx, &setup.registry, &per_platform, (&prov, &dir))
        })
        .collect()
}

/// The image index over `builds` (one image, one build per platform),
/// assembled natively.
fn native_index(
    cx: &Ctx,
    registry: &settings::Registry,
    builds: &[&Built],
    (prov, dir): (&Provenance, &std::path::Path),
) -> Result<Image> {
    let Some(first) = builds.first() else {
        bail!("an image index needs one platform at least");
    };
    let name = first.spec.settings.image.clone();
    let reference = reference(registry, first, prov);
    let archive = dir.join(format!("{name}.tar"));
    let platforms: Vec<String> = builds.iter().map(|b| b.platform.to_string()).collect();
    let what = format!(
        "assemble {reference} for {} as an OCI image index (native, no daemon) into {}",
        platforms.join(", "),
        archive.display()
    );
    let cache = packages_dir(cx);
    let assembled = cx.runner.effect(what, || {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let started = Instant::now();
        let images = builds
            .iter()
            .map(|b| oci::assemble(&image_spec(b, prov, &cache)?))
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(&str, &oci::Assembled)> = builds
            .iter()
            .map(|b| b.platform.oci_arch())
            .zip(&images)
            .collect();
        let index = oci::index(&pairs)?;
        // Each blob once: the platforms' images share a model's layer.
        let mut blobs: BTreeMap<&str, usize> = BTreeMap::new();
        for a in &images {
            blobs.insert(&a.config_digest, a.config.len());
            for (d, l) in a.layer_digests.iter().zip(&a.layers) {
                blobs.insert(d, l.len());
            }
        }
        let image = Image {
            name: name.clone(),
            reference: reference.clone(),
            tag: prov.tag(),
            archive: archive.clone(),
            digest: index.digest.clone(),
            id: String::new(),
            size: blobs.values().sum::<usize>() as u64,
            platforms: platforms.clone(),
        };
        let refs: Vec<&oci::Assembled> = images.iter().collect();
        keep_or_write(dir, &image, started, || {
            oci::write_index_archive(
                &refs,
                &index,
                &reference,
                &prov.tag(),
                u64::try_from(prov.epoch).unwrap_or(0),
                &archive,
            )
        })
    })?;
    Ok(assembled.unwrap_or_else(|| Image {
        platforms: platforms.clone(),
        ..placeholder(name, reference, prov, archive)
    }))
}

/// One image per distinct image name among already built binaries.
pub fn images_from(
    cx: &Ctx,
    setup: &Setup,
    built: &[Built],
    builder: Builder,
) -> Result<Vec<Image>> {
    let mut unique: Vec<&Built> = Vec::new();
    for b in built {
        if !unique
            .iter()
            .any(|u| u.spec.settings.image == b.spec.settings.image)
        {
            unique.push(b);
        }
    }
    let prov = Provenance::read(cx)?;
    let dir = setup.images.dir.as_path();
    let registry = &setup.registry;
    unique
        .into_iter()
        .map(|b| match builder {
            Builder::Native => native(cx, registry, b, (&prov, dir)),
            Builder::Docker => with_docker(cx, registry, b, (&prov, dir)),
        })
        .collect()
}

fn reference(r: &settings::Registry, b: &Built, prov: &Provenance) -> String {
    format!(
        "{}:{}",
        naming::repository(&r.host, &r.account, &b.spec.settings.image),
        prov.tag()
    )
}

fn labels(b: &Built, prov: &Provenance) -> Result<BTreeMap<String, String>> {
    let mut l = BTreeMap::new();
    l.insert(
        "org.opencontainers.image.title".into(),
        b.spec.settings.image.clone(),
    );
    l.insert(
        "org.opencontainers.image.source".into(),
        prov.source.clone(),
    );
    l.insert(
        "org.opencontainers.image.version".into(),
        prov.version.clone(),
    );
    l.insert("org.opencontainers.image.created".into(), prov.created()?);
    if let Some(rev) = &prov.revision {
        l.insert("org.opencontainers.image.revision".into(), rev.clone());
    }
    Ok(l)
}

/// The model file a service's image carries in a layer of its own, at
/// `MODELS_DIR/<service>.onnx` (where its MODEL_PATH points).
fn model_files(b: &Built) -> Result<Vec<(String, Vec<u8>)>> {
    let Some(file) = &b.spec.model_file else {
        return Ok(Vec::new());
    };
    let bytes = std::fs::read(file).with_context(|| {
        format!(
            "cannot read the model of {} ({}; services.{}.model_path)",
            b.spec.name,
            file.display(),
            b.spec.name
        )
    })?;
    let dir = MODELS_DIR.trim_start_matches('/');
    Ok(vec![(format!("{dir}/{}.onnx", b.spec.name), bytes)])
}

/// The record of the last build, to say when nothing changed.
fn record_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn native(
    cx: &Ctx,
    registry: &settings::Registry,
    b: &Built,
    (prov, dir): (&Provenance, &std::path::Path),
) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    let reference = reference(registry, b, prov);
    let archive = dir.join(format!("{name}.tar"));
    let what = format!(
        "assemble {reference} (native, no daemon) from {} into {}",
        b.binary.display(),
        archive.display()
    );
    let assembled = cx.runner.effect(what, || {
        assemble(b, prov, &packages_dir(cx), dir, &reference, &archive)
    })?;
    Ok(assembled.unwrap_or_else(|| placeholder(name, reference, prov, archive)))
}

/// Where an image's ONNX Runtime library is (ORT_DYLIB_PATH names it).
pub const LIBRARY_DIR: &str = "usr/local/lib";

/// What the native builder puts into `b`'s image: `FROM scratch`, or for
/// a model server that loads ONNX Runtime, the C runtime base
/// (`c_runtime`, its packages kept in `cache`) and the library, each a
/// layer of its own.
fn image_spec(b: &Built, prov: &Provenance, cache: &std::path::Path) -> Result<oci::ImageSpec> {
    let mut env = vec!["PATH=/usr/local/bin".to_string()];
    let mut base_layers = Vec::new();
    let arch = b.platform.oci_arch();
    if let Some(library) = &b.runtime_library {
        base_layers = c_runtime::layers(cache, arch)?;
        let bytes =
            std::fs::read(library).with_context(|| format!("cannot read {}", library.display()))?;
        platform::check_binary(&library.display().to_string(), &bytes, b.platform)?;
        let name = build::onnxruntime::file_name();
        base_layers.push((
            format!("onnxruntime={}", build::onnxruntime::VERSION),
            vec![oci::Entry {
                path: format!("{LIBRARY_DIR}/{name}"),
                contents: oci::Contents::File(bytes, 0o644),
            }],
        ));
        env.push(format!("ORT_DYLIB_PATH=/{LIBRARY_DIR}/{name}"));
    }
    let binary =
        std::fs::read(&b.binary).with_context(|| format!("cannot read {}", b.binary.display()))?;
    let what = format!("{} (service {})", b.binary.display(), b.spec.name);
    platform::check_binary(&what, &binary, b.platform)?;
    if b.runtime_library.is_none() {
        platform::check_static(&what, &binary)?;
    }
    Ok(oci::ImageSpec {
        base_layers,
        bin_name: b.spec.bin.to_string(),
        binary,
        files: Vec::new(),
        model_files: model_files(b)?,
        exposed_port: CONTAINER_PORT,
        env,
        labels: labels(b, prov)?,
        arch: arch.into(),
        created: prov.created()?,
        epoch: u64::try_from(prov.epoch).unwrap_or(0),
    })
}

/// The manifest digest `b`'s image would have, assembled in memory only
/// (a release's second build, compared with the first).
///
/// # Errors
/// Unreadable binary or model file.
pub fn digest_of(cx: &Ctx, b: &Built) -> Result<String> {
    let prov = Provenance::read(cx)?;
    Ok(oci::assemble(&image_spec(b, &prov, &packages_dir(cx))?)?.digest)
}

/// A package an image's base was made from, for an SBOM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasePackage {
    /// The purl type: `deb`, `pypi`.
    pub ecosystem: &'static str,
    pub name: &'static str,
    pub version: &'static str,
    /// OCI/Debian architecture name.
    pub arch: &'static str,
    /// What `sha256` is of: `.deb`, `wheel`.
    pub archive: &'static str,
    pub sha256: &'static str,
}

impl BasePackage {
    /// Its package URL (purl-spec): `pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64`,
    /// `pkg:pypi/onnxruntime@1.32.0`.
    pub fn purl(&self) -> String {
        let version = self.version.replace('+', "%2B");
        match self.ecosystem {
            "deb" => format!("pkg:deb/debian/{}@{version}?arch={}", self.name, self.arch),
            other => format!("pkg:{other}/{}@{version}", self.name),
        }
    }
}

/// The packages `b`'s image base was made from: none `FROM scratch`; for
/// ONNX Runtime, the C runtime's Debian packages and the onnxruntime wheel.
///
/// # Errors
/// An architecture with no pinned base.
pub fn base_packages(b: &Built) -> Result<Vec<BasePackage>> {
    if b.runtime_library.is_none() {
        return Ok(Vec::new());
    }
    let arch = b.platform.oci_arch();
    let mut out: Vec<BasePackage> = c_runtime::packages(arch)?
        .into_iter()
        .map(|p| BasePackage {
            ecosystem: "deb",
            name: p.name,
            version: p.version,
            arch: p.arch,
            archive: ".deb",
            sha256: p.sha256,
        })
        .collect();
    let wheel = build::onnxruntime::wheel(arch)?;
    out.push(BasePackage {
        ecosystem: "pypi",
        name: "onnxruntime",
        version: build::onnxruntime::VERSION,
        arch: wheel.arch,
        archive: "wheel",
        sha256: wheel.sha256,
    });
    Ok(out)
}

/// The files `b`'s image holds (path in the image, bytes), for an SBOM.
///
/// # Errors
/// Unreadable binary or model file.
pub fn files_of(b: &Built) -> Result<Vec<(String, Vec<u8>)>> {
    let binary =
        std::fs::read(&b.binary).with_context(|| format!("cannot read {}", b.binary.display()))?;
    let mut files = oci::system_files(&b.spec.bin, &binary);
    if let Some(library) = &b.runtime_library {
        let bytes =
            std::fs::read(library).with_context(|| format!("cannot read {}", library.display()))?;
        let name = build::onnxruntime::file_name();
        files.push((format!("{LIBRARY_DIR}/{name}"), bytes));
    }
    files.extend(model_files(b)?);
    Ok(files)
}

/// The native build proper: assembled in memory, written unless the record
/// of the last build says the same image is there already.
fn assemble(
    b: &Built,
    prov: &Provenance,
    cache: &std::path::Path,
    dir: &std::path::Path,
    reference: &str,
    archive: &std::path::Path,
) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let started = Instant::now();
    let spec = image_spec(b, prov, cache)?;
    let assembled = oci::assemble(&spec)?;
    let image = Image {
        name: name.clone(),
        reference: reference.to_string(),
        tag: prov.tag(),
        archive: archive.to_path_buf(),
        digest: assembled.digest.clone(),
        id: assembled.config_digest.clone(),
        size: (assembled.config.len() + assembled.layers.iter().map(Vec::len).sum::<usize>())
            as u64,
        platforms: Vec::new(),
    };
    keep_or_write(dir, &image, started, || {
        oci::write_archive(&assembled, reference, &prov.tag(), spec.epoch, archive)
    })
}

/// Writes `image`'s archive with `write` and records it, unless the record
/// of the last build says the same image is there already; `image` either
/// way.
fn keep_or_write(
    dir: &std::path::Path,
    image: &Image,
    started: Instant,
    write: impl FnOnce() -> Result<()>,
) -> Result<Image> {
    let record = record_path(dir, &image.name);
    let previous: Option<Image> = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if previous.as_ref() == Some(image) && image.archive.exists() {
        eprintln!(
            "==> image {} is up to date ({}); inputs unchanged",
            image.reference, image.digest
        );
        return Ok(image.clone());
    }
    write()?;
    files::write_whole(&record, &serde_json::to_vec_pretty(image)?)?;
    eprintln!(
        "  ✓ assembled {} in {:.2}s: {} ({:.1} MB{})",
        image.reference,
        started.elapsed().as_secs_f64(),
        image.digest,
        image.size as f64 / 1e6,
        if image.platforms.is_empty() {
            String::new()
        } else {
            format!(", an index of {}", image.platforms.join(", "))
        }
    );
    Ok(image.clone())
}

fn with_docker(
    cx: &Ctx,
    registry: &settings::Registry,
    b: &Built,
    (prov, dir): (&Provenance, &std::path::Path),
) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    if b.runtime_library.is_some() {
        bail!("{}", docker_builder_refuses(&b.spec.name));
    }
    let reference = reference(registry, b, prov);
    let archive = dir.join(format!("{name}.docker.tar"));
    let context = dir.join(format!("{name}-context"));
    let dockerfile = cx
        .root
        .join("services")
        .join(&b.spec.package)
        .join("Dockerfile");
    cx.runner.effect(
        format!("stage the build context {}", context.display()),
        || {
            let binary = std::fs::read(&b.binary)
                .with_context(|| format!("cannot read {}", b.binary.display()))?;
            let what = format!("{} (service {})", b.binary.display(), b.spec.name);
            platform::check_binary(&what, &binary, b.platform)?;
            // The committed Dockerfiles build FROM scratch.
            platform::check_static(&what, &binary)?;
            dockerfile::stage(&context, &b.spec.bin, &b.binary, &model_files(b)?)
        },
    )?;
    let labels: Vec<(String, String)> = labels(b, prov)?.into_iter().collect();
    dockerfile::build(
        cx,
        &dockerfile,
        &context,
        (&reference, b.platform),
        &labels,
        archive.clone(),
    )?;
    let built = cx.runner.unless_dry_run(|| {
        let blobs = oci::read_archive(&archive)?;
        saved(
            &blobs,
            name.clone(),
            reference.clone(),
            prov,
            archive.clone(),
        )
    })?;
    Ok(built.unwrap_or_else(|| placeholder(name, reference, prov, archive)))
}

/// The image `docker save` wrote to `archive` (read as `blobs`), as the
/// rest of the xtask names it.
///
/// # Errors
/// A config or layer the manifest cannot describe.
fn saved(
    blobs: &oci::ArchiveBlobs,
    name: String,
    reference: String,
    prov: &Provenance,
    archive: PathBuf,
) -> Result<Image> {
    let manifest = oci::manifest_for(&blobs.config, &blobs.layers)?;
    Ok(Image {
        name,
        reference,
        tag: prov.tag(),
        digest: oci::sha256(&manifest),
        id: oci::sha256(&blobs.config),
        size: (blobs.config.len() + blobs.layers.iter().map(Vec::len).sum::<usize>()) as u64,
        archive,
        platforms: Vec::new(),
    })
}

/// Why `--builder docker` cannot build the image of `service`, a model on
/// ONNX Runtime.
fn docker_builder_refuses(service: &str) -> String {
    format!(
        "services.{service}: runtime = \"onnxruntime\" needs the C runtime base, which the \
         native builder assembles; the committed Dockerfiles build FROM scratch. Build with \
         the native builder (drop --builder docker), or use runtime = \"tract\""
    )
}

fn placeholder(name: String, reference: String, prov: &Provenance, archive: PathBuf) -> Image {
    Image {
        name,
        reference,
        tag: prov.tag(),
        archive,
        digest: "sha256:<computed when built>".into(),
        id: String::new(),
        size: 0,
        platforms: Vec::new(),
    }
}
