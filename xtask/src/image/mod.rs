//! `cargo xtask image build|load|push`: images from source, as
//! source-to-image and ko make them, but reproducible, daemonless by default,
//! non-root on an empty base, and named `<registry>/<name>:<version>-<sha>`.

mod dockerfile;
pub mod naming;
pub mod oci;
pub mod registry;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::build::{self, Built};
use crate::cli::{ImageArgs, ImageCommand};
use crate::context::Ctx;
use crate::runner::Cmd;
use crate::services::{self, ServiceSpec};
use naming::Provenance;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Builder {
    /// Assemble the OCI image in-process, no daemon (default)
    #[default]
    Native,
    /// `docker build` with the service's committed Dockerfile
    Docker,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadInto {
    Docker,
    Minikube,
    Kind,
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
    /// Uncompressed bytes: config plus layers.
    pub size: u64,
}

impl ImageArgs {
    pub fn run(self, cx: &Ctx) -> Result<ExitCode> {
        match self.command {
            ImageCommand::Build { services, builder } => {
                let images = build_images(cx, &services::select(&cx.config, &services)?, builder)?;
                print_images(cx, &images);
            }
            ImageCommand::Load {
                services,
                into,
                builder,
            } => {
                let images = build_images(cx, &services::select(&cx.config, &services)?, builder)?;
                for image in &images {
                    load(cx, image, into)?;
                }
            }
            ImageCommand::Push {
                services,
                registry,
                insecure,
                builder,
            } => {
                let images = build_images(cx, &services::select(&cx.config, &services)?, builder)?;
                for image in &images {
                    let repository = match &registry {
                        Some(r) => format!("{}/{}", r.trim_end_matches('/'), image.name),
                        None => image
                            .reference
                            .rsplit_once(':')
                            .map_or(image.reference.clone(), |(r, _)| r.to_string()),
                    };
                    push(cx, image, &repository, insecure)?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print_images(cx: &Ctx, images: &[Image]) {
    if cx.runner.is_dry_run() {
        return;
    }
    for i in images {
        println!(
            "{}\n  digest  {}\n  size    {:.1} MB uncompressed\n  archive {}",
            i.reference,
            i.digest,
            i.size as f64 / 1e6,
            i.archive.display()
        );
    }
}

fn images_dir(cx: &Ctx) -> PathBuf {
    cx.config.images.dir.clone()
}

/// Builds the binaries, then one image per distinct image name.
pub fn build_images(cx: &Ctx, specs: &[ServiceSpec], builder: Builder) -> Result<Vec<Image>> {
    if build::static_target().is_none() {
        bail!(
            "images need Linux binaries, and this host ({}/{}) cannot build them statically; \
             build on Linux (or in a Linux VM or container)",
            std::env::consts::OS,
            std::env::consts::ARCH
        );
    }
    // images_from keeps one image per image name.
    let built = build::build(cx, specs)?;
    images_from(cx, &built, builder)
}

/// One image per distinct image name among already built binaries.
pub fn images_from(cx: &Ctx, built: &[Built], builder: Builder) -> Result<Vec<Image>> {
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
    let dir = images_dir(cx);
    if !cx.runner.is_dry_run() {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    unique
        .into_iter()
        .map(|b| match builder {
            Builder::Native => native(cx, b, &prov, &dir),
            Builder::Docker => with_docker(cx, b, &prov, &dir),
        })
        .collect()
}

fn reference(cx: &Ctx, b: &Built, prov: &Provenance) -> String {
    let r = &cx.config.registry;
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

/// Files the image carries besides the binary: the model server's models.
fn extra_files(cx: &Ctx, b: &Built) -> Result<Vec<(String, Vec<u8>)>> {
    if b.spec.package != "model-server" {
        return Ok(Vec::new());
    }
    let dir = cx.root.join("services/model-server/models");
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".onnx") {
            files.push((format!("models/{name}"), std::fs::read(e.path())?));
        }
    }
    Ok(files)
}

/// The record of the last build, to say when nothing changed.
fn record_path(dir: &std::path::Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

fn native(cx: &Ctx, b: &Built, prov: &Provenance, dir: &std::path::Path) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    let reference = reference(cx, b, prov);
    let archive = dir.join(format!("{name}.tar"));
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "assemble {reference} (native, no daemon) from {} into {}",
            b.binary.display(),
            archive.display()
        ));
        return Ok(placeholder(name, reference, prov, archive));
    }
    let started = Instant::now();
    let spec = oci::ImageSpec {
        bin_name: b.spec.bin.to_string(),
        binary: std::fs::read(&b.binary)
            .with_context(|| format!("cannot read {}", b.binary.display()))?,
        files: extra_files(cx, b)?,
        exposed_port: 5000,
        env: vec!["PATH=/usr/local/bin".into()],
        labels: labels(b, prov)?,
        arch: build::oci_arch().into(),
        created: prov.created()?,
        epoch: u64::try_from(prov.epoch).unwrap_or(0),
    };
    let assembled = oci::assemble(&spec)?;
    let image = Image {
        name: name.clone(),
        reference: reference.clone(),
        tag: prov.tag(),
        archive: archive.clone(),
        digest: assembled.digest.clone(),
        id: assembled.config_digest.clone(),
        size: (assembled.config.len() + assembled.layer.len()) as u64,
    };
    let record = record_path(dir, &name);
    let previous: Option<Image> = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if previous.as_ref() == Some(&image) && archive.exists() {
        eprintln!(
            "==> image {reference} is up to date ({}); inputs unchanged",
            image.digest
        );
        return Ok(image);
    }
    oci::write_archive(&assembled, &reference, &prov.tag(), spec.epoch, &archive)?;
    std::fs::write(&record, serde_json::to_vec_pretty(&image)?)?;
    eprintln!(
        "  ✓ assembled {reference} in {:.2}s: {} ({:.1} MB)",
        started.elapsed().as_secs_f64(),
        image.digest,
        image.size as f64 / 1e6
    );
    Ok(image)
}

fn with_docker(cx: &Ctx, b: &Built, prov: &Provenance, dir: &std::path::Path) -> Result<Image> {
    let name = b.spec.settings.image.clone();
    let reference = reference(cx, b, prov);
    let archive = dir.join(format!("{name}.docker.tar"));
    let context = dir.join(format!("{name}-context"));
    let dockerfile = cx
        .root
        .join("services")
        .join(b.spec.package)
        .join("Dockerfile");
    if cx.runner.is_dry_run() {
        cx.runner
            .step(format!("stage the build context {}", context.display()));
    } else {
        dockerfile::stage(&context, b.spec.bin, &b.binary, &extra_files(cx, b)?)?;
    }
    let labels: Vec<(String, String)> = labels(b, prov)?.into_iter().collect();
    dockerfile::build(
        cx,
        &dockerfile,
        &context,
        &reference,
        &labels,
        archive.clone(),
    )?;
    if cx.runner.is_dry_run() {
        return Ok(placeholder(name, reference, prov, archive));
    }
    let blobs = oci::read_archive(&archive)?;
    let manifest = oci::manifest_for(&blobs.config, &blobs.layers)?;
    Ok(Image {
        name,
        reference,
        tag: prov.tag(),
        digest: oci::sha256(&manifest),
        id: oci::sha256(&blobs.config),
        size: (blobs.config.len() + blobs.layers.iter().map(Vec::len).sum::<usize>()) as u64,
        archive,
    })
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
    }
}

/// The image ID docker knows for `reference`, if any.
pub fn docker_image_id(cx: &Ctx, reference: &str) -> Option<String> {
    cx.runner
        .probe(
            &Cmd::new(crate::tools::engine_cli(), "inspecting images")
                .args(["image", "inspect", "--format", "{{.Id}}", reference]),
            Duration::from_secs(30),
        )
        .ok()
        .filter(|p| p.success)
        .map(|p| p.stdout.trim().to_string())
}

/// Loads an image into docker, minikube or kind, saying which.
pub fn load(cx: &Ctx, image: &Image, into: LoadInto) -> Result<()> {
    match into {
        LoadInto::Docker => {
            let id = docker_image_id(cx, &image.reference);
            let same = id.as_deref().map(|i| i.trim_start_matches("sha256:"))
                == Some(image.id.trim_start_matches("sha256:"));
            if same && !cx.runner.is_dry_run() {
                eprintln!("==> docker already has {} ({})", image.reference, image.id);
                return Ok(());
            }
            cx.runner
                .step(format!("load {} into docker", image.reference));
            cx.runner.run(
                &Cmd::new(crate::tools::engine_cli(), "loading images into docker")
                    .args(["load", "--input"])
                    .arg(&image.archive),
            )?;
        }
        LoadInto::Minikube | LoadInto::Kind => {
            let (tool, args, place) = if into == LoadInto::Minikube {
                let p = &cx.config.minikube.profile;
                (
                    "minikube",
                    vec![
                        "image".to_string(),
                        "load".into(),
                        "--profile".into(),
                        p.clone(),
                    ],
                    format!("minikube profile {p}"),
                )
            } else {
                let c = &cx.config.kind.cluster;
                (
                    "kind",
                    vec![
                        "load".to_string(),
                        "image-archive".into(),
                        "--name".into(),
                        c.clone(),
                    ],
                    format!("kind cluster {c}"),
                )
            };
            cx.runner
                .step(format!("load {} into {place}", image.reference));
            cx.runner.run(
                &Cmd::new(tool, format!("loading images into {tool}"))
                    .args(args)
                    .arg(&image.archive),
            )?;
        }
    }
    Ok(())
}

/// Pushes to `repository` (without tag), printing the pinned reference.
pub fn push(cx: &Ctx, image: &Image, repository: &str, insecure: bool) -> Result<String> {
    let pinned_hint = format!("{repository}:{}", image.tag);
    if cx.runner.is_dry_run() {
        cx.runner.step(format!(
            "push {} to {pinned_hint} through the OCI distribution API{}",
            image.archive.display(),
            if insecure { " (plain HTTP)" } else { "" }
        ));
        return Ok(format!("{repository}@{}", image.digest));
    }
    eprintln!("==> pushing {pinned_hint}");
    let pushed = registry::push(&image.archive, repository, &image.tag, insecure)
        .with_context(|| format!("pushing {pinned_hint}"))?;
    let pinned = format!("{repository}@{}", pushed.digest);
    eprintln!(
        "  ✓ pushed {pinned_hint}: {} blob(s) uploaded, {} already there",
        pushed.uploaded, pushed.skipped
    );
    println!("{pinned}");
    Ok(pinned)
}
