//! `cargo xtask release`: cut a version as files a pipeline can use. In
//! order, stopping at the first failure: preflight (`preflight`), build
//! every image in the size profile twice in two target directories and
//! refuse differing digests, push by digest with the version's tags, an
//! SBOM (`sbom`) and a provenance statement (`provenance`) per image,
//! signatures and attestations in cosign's layout (`cosign`, `signing`),
//! hydrated manifests and checksums under `target/release/vX.Y.Z/`, and an
//! annotated tag.

pub mod bump;
pub mod cosign;
pub mod hydrate;
pub mod preflight;
pub mod provenance;
pub mod sbom;
pub mod signing;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xshell::cmd;

use crate::build::{self, Built, Profile};
use crate::ground::context::Ctx;
use crate::ground::services::ServiceSpec;
use crate::image::{self, Builder, Image, oci};
use crate::publish::push::Upload;

/// What the user asked for, and what the settings give it.
pub struct Options {
    pub version: String,
    /// `HOST/ACCOUNT` the images go to (`--registry`, else `[registry]`).
    pub registry: String,
    pub insecure: bool,
    pub sign_key: Option<PathBuf>,
    pub tag: bool,
    pub latest: bool,
    pub reproducibility_check: bool,
    /// The services to release, in deploy order.
    pub services: Vec<ServiceSpec>,
    /// How the images are made (with every service of the settings).
    pub setup: image::Setup,
    /// `[kubernetes] manifests_dir`: the overlays and Seldon manifests the
    /// release renders with its pins.
    pub manifests_dir: PathBuf,
}

/// One released image, as `--file-output` and the text report give it.
#[derive(Serialize, Clone, Debug)]
pub struct Released {
    /// The image name from xtask.toml.
    #[serde(rename = "imageName")]
    pub image_name: String,
    /// `repository:vX.Y.Z@sha256:…`, Skaffold's build-artifact `tag`.
    pub tag: String,
    pub repository: String,
    pub digest: String,
    pub tags: Vec<String>,
    /// `repository:sha256-<hex>.sig`.
    pub signature: String,
    /// `repository:sha256-<hex>.att` (SBOM and provenance).
    pub attestations: String,
    /// Paths of the files written for this image.
    pub sbom: PathBuf,
    pub provenance: PathBuf,
}

/// The release's output directory: `<target>/release/vX.Y.Z`.
pub fn out_dir(cx: &Ctx, version: &semver::Version) -> PathBuf {
    build::target_dir(cx)
        .join("release")
        .join(format!("v{version}"))
}

/// Runs the release; the images released, in service order.
///
/// # Errors
/// The first step that fails, with what to do.
pub fn run(cx: &Ctx, opts: &Options) -> Result<Vec<Released>> {
    let started = now();
    let facts = preflight(cx, &opts.version)?;
    // The hydrated manifests come last: find kubectl before anything is pushed.
    cx.runner
        .locate("kubectl", "rendering the hydrated manifests")?;
    let key = match signing::Key::load(opts.sign_key.as_deref()) {
        Ok(k) => Some(k),
        Err(e) => {
            cx.runner.precondition(e)?;
            None
        }
    };
    let base = &opts.registry;
    let specs = &opts.services;
    let uploads = open_registry(cx, base, &unique_images(specs), opts.insecure)?;
    let done = Done::reported_on_interrupt(&facts.version);
    let (built, images, reproducibility) =
        build_twice(cx, &opts.setup, specs, opts.reproducibility_check)?;
    let Some(uploads) = uploads else {
        plan_rest(cx, &facts.version, opts);
        return Ok(Vec::new());
    };
    let Some(key) = key else {
        bail!("no signing key");
    };
    let out = out_dir(cx, &facts.version);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let record = Record::gather(cx, &opts.setup.all, reproducibility, started)?;
    let mut released = Vec::new();
    for image in &images {
        let upload = &uploads[&image.name];
        let repository = format!("{base}/{}", image.name);
        let siblings: Vec<String> = images
            .iter()
            .filter(|i| i.name != image.name)
            .map(|i| format!("{base}/{}", i.name))
            .collect();
        let tags = push_tagged(image, upload, &repository, &siblings, &facts, opts)?;
        done.add(format!("pushed {repository}@{} unsigned", image.digest));
        let spec = built
            .iter()
            .find(|b| b.spec.settings.image == image.name)
            .context("no binary for an image")?;
        let (bom, statement) = describe(&record, spec, image, &repository, &facts)?;
        let sbom = out.join(format!("{}.cdx.json", image.name));
        let provenance = out.join(format!("{}.provenance.json", image.name));
        std::fs::write(&sbom, serde_json::to_vec_pretty(&bom)?)?;
        std::fs::write(&provenance, serde_json::to_vec_pretty(&statement)?)?;
        let (sig_tag, att_tag) = sign(upload, &key, &repository, &image.digest, bom, &statement)?;
        done.add(format!("signed {repository}@{}", image.digest));
        released.push(Released {
            image_name: image.name.clone(),
            tag: format!("{repository}:{}@{}", tags[0], image.digest),
            repository,
            digest: image.digest.clone(),
            tags,
            signature: sig_tag,
            attestations: att_tag,
            sbom,
            provenance,
        });
    }
    write_files(
        cx,
        (&opts.manifests_dir, &out),
        &released,
        &facts.notes,
        &key,
    )?;
    tag(cx, opts.tag, &facts)?;
    Ok(released)
}

/// Step 1, the preflight: every problem is a precondition (a real run stops at
/// the first, a dry run lists each and goes on).
fn preflight(cx: &Ctx, version: &str) -> Result<preflight::Facts> {
    let (facts, problems) = preflight::check(cx, version)?;
    let passed = problems.is_empty();
    for p in problems {
        cx.runner.precondition(p)?;
    }
    cx.runner.step(if passed {
        format!(
            "preflight: clean tree at {}, version {} (last tag {}), CHANGELOG section found; `cargo test` is not run here (CI did)",
            short(&facts.commit),
            facts.version,
            facts
                .previous
                .as_ref()
                .map_or("none".to_string(), |p| format!("v{p}"))
        )
    } else {
        format!(
            "preflight of version {}: would stop at the problems listed first; `cargo test` is not run here (CI did)",
            facts.version
        )
    });
    Ok(facts)
}

/// The registry answers and takes our credentials, before any build (a
/// read: a dry run checks it too): one upload per image name, or None in
/// a dry run.
fn open_registry(
    cx: &Ctx,
    base: &str,
    images_of: &[ServiceSpec],
    insecure: bool,
) -> Result<Option<BTreeMap<String, Upload>>> {
    let mut opened = BTreeMap::new();
    for s in images_of {
        let repo = format!("{base}/{}", s.settings.image);
        match Upload::open(&repo, insecure) {
            Ok(u) => {
                opened.insert(s.settings.image.clone(), u);
            }
            Err(e) => {
                cx.runner.precondition(e)?;
                break;
            }
        }
    }
    let uploads = cx.runner.unless_dry_run(|| Ok(opened))?;
    cx.runner.step(format!(
        "registry {base}{} answers and accepts the credentials",
        if insecure { " (plain HTTP)" } else { "" }
    ));
    Ok(uploads)
}

/// What is done so far, which Ctrl-C reports with how to finish, while
/// this value lives.
struct Done {
    steps: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _guard: crate::ground::interrupt::Guard,
}

impl Done {
    fn reported_on_interrupt(version: &semver::Version) -> Self {
        let steps: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
        let (seen, version) = (std::sync::Arc::clone(&steps), version.to_string());
        let _guard = crate::ground::interrupt::on_interrupt(move || {
            let done = seen.lock().map(|d| d.clone()).unwrap_or_default();
            if done.is_empty() {
                eprintln!("\n==> release {version} interrupted before anything was pushed");
            } else {
                eprintln!(
                    "\n==> release {version} interrupted; done: {}. Not done: the rest, and no git \
                     tag. Run the same command again to finish it (pushes and signatures are \
                     idempotent)",
                    done.join("; ")
                );
            }
        });
        Self { steps, _guard }
    }

    fn add(&self, what: String) {
        if let Ok(mut d) = self.steps.lock() {
            d.push(what);
        }
    }
}

/// Step 2: every image in the size profile; with `check`, built again in a
/// second target directory and the digests compared. The first build's
/// binaries and images, and the verdict the provenance records.
fn build_twice(
    cx: &Ctx,
    setup: &image::Setup,
    specs: &[ServiceSpec],
    check: bool,
) -> Result<(Vec<Built>, Vec<Image>, &'static str)> {
    let built = build::build(cx, &setup.all, specs, Profile::Dist)?;
    let images = image::images_from(cx, setup, &built, Builder::Native)?;
    let verdict = if check {
        let second = build::target_dir(cx).join("reproducibility");
        let built_b = build::build_in(cx, &setup.all, specs, Profile::Dist, &second)?;
        cx.runner
            .step("compare every image's digest between the two builds");
        cx.runner
            .unless_dry_run(|| compare(cx, &images, &built_b))?;
        "passed: two builds in two target directories gave the same image digests"
    } else {
        cx.runner
            .step("reproducibility NOT checked (--skip-reproducibility-check)");
        "skipped (--skip-reproducibility-check)"
    };
    Ok((built, images, verdict))
}

/// What every image's SBOM and provenance record of the build.
struct Record {
    lock_digest: String,
    checksums: BTreeMap<(String, String), String>,
    crates: BTreeMap<String, std::collections::BTreeSet<sbom::Crate>>,
    rustc: String,
    /// The commit's time (RFC 3339): the SBOM's, so that it is reproducible.
    timestamp: String,
    source: String,
    /// This command line, the signing key's path masked.
    command: String,
    /// The cargo invocation that built the binaries.
    build_command: String,
    reproducibility: &'static str,
    started: String,
}

impl Record {
    /// `all`: every service of the settings (what cargo builds).
    fn gather(
        cx: &Ctx,
        all: &[ServiceSpec],
        reproducibility: &'static str,
        started: String,
    ) -> Result<Self> {
        let lockfile =
            std::fs::read(cx.root.join("Cargo.lock")).context("cannot read Cargo.lock")?;
        let made = image::naming::Provenance::read(cx)?;
        // crt-static comes from the xtask as rustc wrapper (build::link),
        // said after the command.
        let build_command = {
            let mut c = crate::build::static_command(cx, Profile::Dist);
            c.args(crate::build::selection(cx, all)?.build_args());
            let mut words: Vec<String> = std::iter::once("cargo".to_string())
                .chain(
                    c.get_args()
                        .map(|a| crate::ground::runner::quote(&a.to_string_lossy())),
                )
                .collect();
            if crate::build::static_target().is_some() {
                words.push("(RUSTC_WORKSPACE_WRAPPER: cargo xtask, crt-static on binaries)".into());
            }
            words.join(" ")
        };
        Ok(Self {
            lock_digest: oci::sha256(&lockfile),
            checksums: sbom::checksums(&String::from_utf8_lossy(&lockfile))?,
            crates: sbom::crates(cx, all)?,
            rustc: rustc_version(cx)?,
            timestamp: made.created()?,
            source: made.source,
            command: invocation(std::env::args().skip(1)),
            build_command,
            reproducibility,
            started,
        })
    }
}

/// Step 3: `image` pushed by digest under its version tag, then the other tags;
/// returns the tags, the version's first.
fn push_tagged(
    image: &Image,
    upload: &Upload,
    repository: &str,
    siblings: &[String],
    facts: &preflight::Facts,
    opts: &Options,
) -> Result<Vec<String>> {
    let pushed = crate::publish::push::push(
        &image.archive,
        repository,
        &format!("v{}", facts.version),
        opts.insecure,
        siblings,
    )
    .with_context(|| format!("pushing {repository}"))?;
    if pushed.digest != image.digest {
        bail!(
            "the registry holds {repository} as {}, not the built {}",
            pushed.digest,
            image.digest
        );
    }
    let tags = tags(&facts.version, &facts.commit, opts.latest);
    let blobs = oci::read_archive(&image.archive)?;
    let manifest = oci::manifest_for(&blobs.config, &blobs.layers)?;
    for t in &tags[1..] {
        upload.manifest(t, &manifest, crate::publish::push::OCI_MANIFEST)?;
    }
    eprintln!(
        "  ✓ pushed {repository}@{} ({} blob(s) uploaded, {} there), tagged {}",
        image.digest,
        pushed.uploaded,
        pushed.skipped,
        tags.join(", ")
    );
    Ok(tags)
}

/// Steps 4 and 5: the image's SBOM and its provenance statement.
fn describe(
    record: &Record,
    spec: &Built,
    image: &Image,
    repository: &str,
    facts: &preflight::Facts,
) -> Result<(serde_json::Value, serde_json::Value)> {
    let version = facts.version.to_string();
    let bom = sbom::document(&sbom::Contents {
        repository,
        digest: &image.digest,
        version: &version,
        files: image::files_of(spec)?,
        packages: image::base_packages(spec)?,
        crates: record
            .crates
            .get(&spec.spec.package)
            .context("cargo tree listed no crates")?,
        checksums: &record.checksums,
        timestamp: &record.timestamp,
    })?;
    let statement = provenance::statement(&provenance::Build {
        repository,
        digest: &image.digest,
        source: &record.source,
        commit: &facts.commit,
        version: &version,
        profile: Profile::Dist.as_str(),
        command: &record.command,
        build_command: &record.build_command,
        rustc: &record.rustc,
        lockfile: &record.lock_digest,
        reproducibility: record.reproducibility,
        started: &record.started,
        finished: &now(),
    });
    Ok((bom, statement))
}

/// Step 6: the image signed and its SBOM and provenance attested, in cosign's
/// layout; returns the signature's and the attestations' references.
fn sign(
    upload: &Upload,
    key: &signing::Key,
    repository: &str,
    digest: &str,
    bom: serde_json::Value,
    statement: &serde_json::Value,
) -> Result<(String, String)> {
    let sig_tag = cosign::tag_for(digest, "sig");
    let att_tag = cosign::tag_for(digest, "att");
    cosign::push(
        upload,
        &sig_tag,
        &[cosign::signature_layer(key, repository, digest)],
    )?;
    let sbom_statement = provenance::sbom_statement(repository, digest, bom);
    cosign::push(
        upload,
        &att_tag,
        &[
            cosign::attestation_layer(
                key,
                &serde_json::to_vec(&sbom_statement)?,
                provenance::CYCLONEDX,
            )?,
            cosign::attestation_layer(
                key,
                &serde_json::to_vec(statement)?,
                provenance::SLSA_PROVENANCE,
            )?,
        ],
    )?;
    eprintln!("  ✓ signed {repository}: {sig_tag}, attestations {att_tag}");
    Ok((
        format!("{repository}:{sig_tag}"),
        format!("{repository}:{att_tag}"),
    ))
}

/// Step 7: the hydrated manifests (of those in `manifests_dir`), release
/// notes, public key and checksums in `out`.
fn write_files(
    cx: &Ctx,
    (manifests_dir, out): (&Path, &Path),
    released: &[Released],
    notes: &str,
    key: &signing::Key,
) -> Result<()> {
    let pins: Vec<hydrate::Pin> = released
        .iter()
        .map(|r| hydrate::Pin {
            name: r.image_name.clone(),
            repository: r.repository.clone(),
            digest: r.digest.clone(),
        })
        .collect();
    hydrate::write_all(cx, manifests_dir, out, &pins)?;
    std::fs::write(out.join("RELEASE_NOTES.md"), format!("{notes}\n"))?;
    std::fs::write(out.join("cosign.pub"), key.public_pem()?)?;
    write_sums(out)
}

/// Step 8: the commit tagged `vX.Y.Z` (annotated, the notes as its message),
/// when asked and not tagged already.
fn tag(cx: &Ctx, asked: bool, facts: &preflight::Facts) -> Result<()> {
    if asked && facts.tagged {
        eprintln!(
            "==> v{} already tags this commit; not tagging again",
            facts.version
        );
    } else if asked {
        let tag = format!("v{}", facts.version);
        let notes = &facts.notes;
        cx.runner.run(
            cmd!(cx.sh, "git tag --annotate {tag} --message {notes}"),
            "tagging the release commit",
        )?;
        eprintln!("==> tagged {tag}; push it with `git push origin {tag}`");
    }
    Ok(())
}

/// The plan's remaining steps under --dry-run.
fn plan_rest(cx: &Ctx, version: &semver::Version, opts: &Options) {
    let tags = tags(version, "<sha7>", opts.latest);
    cx.runner.step(format!(
        "push every image by digest, tagged {}",
        tags.join(", ")
    ));
    cx.runner
        .step("write a CycloneDX 1.5 SBOM and an SLSA v1 provenance statement per image");
    cx.runner.step(
        "sign each image (sha256-<digest>.sig) and attest its SBOM and provenance (sha256-<digest>.att), cosign's layout",
    );
    cx.runner.step(format!(
        "write hydrated manifests, SBOMs, provenance, RELEASE_NOTES.md and SHA256SUMS to {}",
        out_dir(cx, version).display()
    ));
    if opts.tag {
        cx.runner
            .step(format!("git tag --annotate v{version} (not pushed)"));
    }
}

/// `cargo xtask ARGS…` as the provenance records it: shell-quoted, the
/// signing key's path masked (the key is the signer's business).
pub fn invocation(args: impl Iterator<Item = String>) -> String {
    let mut out = vec!["cargo".to_string(), "xtask".to_string()];
    let mut mask_next = false;
    for a in args {
        if mask_next {
            out.push("<key>".into());
            mask_next = false;
        } else if a == "--sign-key" {
            out.push(a);
            mask_next = true;
        } else if a.starts_with("--sign-key=") {
            out.push("--sign-key=<key>".into());
        } else {
            out.push(crate::ground::runner::quote(&a));
        }
    }
    out.join(" ")
}

/// `vX.Y.Z`, `X.Y`, `X.Y.Z-<sha7>`, and `latest` when asked. A
/// pre-release (`1.2.0-rc.1`) does not move `X.Y`, which names the newest
/// release of that minor version.
pub fn tags(version: &semver::Version, commit: &str, latest: bool) -> Vec<String> {
    let mut t = vec![format!("v{version}")];
    if version.pre.is_empty() {
        t.push(format!("{}.{}", version.major, version.minor));
    }
    t.push(format!("{version}-{}", short7(commit)));
    if latest {
        t.push("latest".into());
    }
    t
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

fn short7(commit: &str) -> &str {
    &commit[..commit.len().min(7)]
}

/// One spec per image name (two services may share an image).
fn unique_images(specs: &[ServiceSpec]) -> Vec<ServiceSpec> {
    let mut out: Vec<ServiceSpec> = Vec::new();
    for s in specs {
        if !out.iter().any(|o| o.settings.image == s.settings.image) {
            out.push(s.clone());
        }
    }
    out
}

/// Refuses when the second build's image digests differ from the first's.
fn compare(cx: &Ctx, images: &[Image], second: &[Built]) -> Result<()> {
    let mut differ = Vec::new();
    for image in images {
        let b = second
            .iter()
            .find(|b| b.spec.settings.image == image.name)
            .context("the second build lacks an image")?;
        let digest = image::digest_of(cx, b)?;
        if digest != image.digest {
            differ.push(format!("{}: {} vs {digest}", image.name, image.digest));
        } else {
            eprintln!("  ✓ {} reproduced: {digest}", image.name);
        }
    }
    if !differ.is_empty() {
        bail!(
            "the build is not reproducible; two builds of the same commit gave different images:\n  {}\n\
             something in the build depends on the time, the machine or the target directory \
             (a build script embedding a timestamp, say); fix it, or release with \
             --skip-reproducibility-check (the provenance will say so)",
            differ.join("\n  ")
        );
    }
    Ok(())
}

fn rustc_version(cx: &Ctx) -> Result<String> {
    let out = cx.runner.probe(
        cmd!(cx.sh, "rustc -vV"),
        "recording the toolchain",
        Duration::from_secs(20),
    )?;
    Ok(out.stdout.trim().to_string())
}

/// RFC 3339, now.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `SHA256SUMS` over every file in `dir` (recursively), `sha256sum` format.
fn write_sums(dir: &Path) -> Result<()> {
    let mut lines = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n != "SHA256SUMS") {
                let bytes = std::fs::read(&path)?;
                let rel = path.strip_prefix(dir).unwrap_or(&path);
                lines.push(format!(
                    "{}  {}",
                    oci::sha256(&bytes).trim_start_matches("sha256:"),
                    rel.display()
                ));
            }
        }
    }
    lines.sort_by(|a, b| a[66..].cmp(&b[66..]));
    std::fs::write(dir.join("SHA256SUMS"), lines.join("\n") + "\n")?;
    Ok(())
}

/// `--file-output`: Skaffold's build-artifacts shape, extended.
pub fn file_output(released: &[Released]) -> serde_json::Value {
    serde_json::json!({ "builds": released })
}
