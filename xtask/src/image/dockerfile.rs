//! The `docker` builder: the committed Dockerfile of each service (FROM
//! scratch, the same non-root user) built by `docker build` from a staged
//! context holding the static binary and the image's files, then saved to
//! an archive so loading and pushing work as for native images. Where this
//! host cannot build the platform, a multi-stage Dockerfile of its own
//! (`FromSource`) compiles the service in the pinned Rust image instead.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use xshell::cmd;

use super::oci::UID;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;

/// Stages `<dir>/rootfs/...` for the Dockerfile's `COPY rootfs/ /`.
pub fn stage(dir: &Path, bin_name: &str, binary: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc"))?;
    std::fs::create_dir_all(rootfs.join("usr/local/bin"))?;
    write_user(&rootfs)?;
    std::fs::copy(binary, rootfs.join("usr/local/bin").join(bin_name))
        .with_context(|| format!("cannot stage {}", binary.display()))?;
    for (path, bytes) in files {
        let dest = rootfs.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, bytes)?;
    }
    Ok(())
}

/// `docker build --platform <platform>` (a Dockerfile that only copies
/// files needs no emulation for another CPU) then `docker save`; returns
/// the archive.
pub fn build(
    cx: &Ctx,
    dockerfile: &Path,
    context: &Path,
    (reference, platform): (&str, Platform),
    labels: &[(String, String)],
    archive: PathBuf,
) -> Result<PathBuf> {
    let docker = crate::ground::tools::engine_cli();
    let platform = platform.to_string();
    let labels = labels
        .iter()
        .flat_map(|(k, v)| ["--label".to_string(), format!("{k}={v}")]);
    cx.runner.run(
        cmd!(
            cx.sh,
            "{docker} build --platform {platform} --file {dockerfile} --tag {reference} {labels...} {context}"
        ),
        "building images with --builder docker",
    )?;
    cx.runner.run(
        cmd!(cx.sh, "{docker} save --output {archive} {reference}"),
        "saving the image",
    )?;
    Ok(archive)
}

/// The docker builder's multi-stage Dockerfile for a service compiled in
/// its container (`Toolchain::Docker`): the workspace's sources (`source/`
/// in the context) built by `cargo` in `builder` (the pinned Rust image),
/// then the binary copied onto an empty base beside `rootfs/` (the user
/// and the model files), as the native builder's image has them.
pub struct FromSource<'a> {
    /// The build stage's image (`docker.io/library/rust:1.95.0`).
    pub builder: &'a str,
    /// The build command and its arguments (`cargo build --profile … --target …`).
    pub cargo: &'a [String],
    /// Where the build leaves the binary, relative to the sources
    /// (`target/x86_64-unknown-linux-gnu/release/test-api`).
    pub built: &'a str,
    /// The binary's name under `/usr/local/bin`.
    pub bin: &'a str,
    /// The port the image exposes.
    pub port: u16,
}

impl FromSource<'_> {
    /// The Dockerfile's text. The build command is in exec form (JSON), so
    /// no shell quoting is involved; glibc is linked statically
    /// (`+crt-static` with `--target`, which leaves build scripts and
    /// proc-macros alone), as the native build does.
    pub fn text(&self) -> String {
        let run = serde_json::to_string(self.cargo).unwrap_or_default();
        let entrypoint =
            serde_json::to_string(&[format!("/usr/local/bin/{}", self.bin)]).unwrap_or_default();
        format!(
            "# Made by `cargo xtask image build --builder docker`: the service compiled\n\
             # from the workspace's sources in the pinned Rust image, then copied onto\n\
             # an empty base with the same non-root user as the native builder's image.\n\
             FROM {builder} AS build\n\
             WORKDIR /src\n\
             COPY source/ ./\n\
             ENV RUSTFLAGS=\"-C target-feature=+crt-static\" CARGO_TERM_COLOR=never\n\
             RUN {run}\n\
             \n\
             FROM scratch\n\
             COPY rootfs/ /\n\
             COPY --from=build /src/{built} /usr/local/bin/{bin}\n\
             ENV PATH=/usr/local/bin\n\
             USER {UID}:{UID}\n\
             EXPOSE {port}\n\
             ENTRYPOINT {entrypoint}\n",
            builder = self.builder,
            built = self.built,
            bin = self.bin,
            port = self.port,
        )
    }
}

/// Stages the context of a build from source in `dir`: `Dockerfile`,
/// `rootfs/` (the user, `files`) and `source/`, a copy of the workspace
/// files at `root` that git tracks or would track (`sources`, relative
/// paths; what .gitignore leaves out, `target/` too, stays out).
///
/// # Errors
/// A file that cannot be read or written.
pub fn stage_from_source(
    dir: &Path,
    dockerfile: &str,
    files: &[(String, Vec<u8>)],
    root: &Path,
    sources: &[PathBuf],
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc"))?;
    write_user(&rootfs)?;
    for (path, bytes) in files {
        let dest = rootfs.join(path);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&dest, bytes)?;
    }
    let source = dir.join("source");
    for file in sources {
        let from = root.join(file);
        // Listed by git but deleted in the work tree: not part of it.
        if !from.is_file() {
            continue;
        }
        let to = source.join(file);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&from, &to).with_context(|| format!("cannot stage {}", from.display()))?;
    }
    std::fs::write(dir.join("Dockerfile"), dockerfile)?;
    Ok(())
}

/// `etc/passwd` and `etc/group` with the non-root user, under `rootfs`.
fn write_user(rootfs: &Path) -> Result<()> {
    std::fs::write(
        rootfs.join("etc/passwd"),
        format!("nonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n"),
    )?;
    std::fs::write(rootfs.join("etc/group"), format!("nonroot:x:{UID}:\n"))?;
    Ok(())
}

/// The contents of `path` (`usr/local/bin/test-api`) in the image whose
/// layers (uncompressed tars, as `docker save` writes them) are given,
/// the last layer that has it winning.
///
/// # Errors
/// A layer that is not a tar; no layer has the file.
pub fn file_in_layers(layers: &[Vec<u8>], path: &str) -> Result<Vec<u8>> {
    for layer in layers.iter().rev() {
        let mut archive = tar::Archive::new(layer.as_slice());
        for entry in archive.entries().context("an image layer is not a tar")? {
            let mut entry = entry?;
            let name = entry.path()?.to_string_lossy().into_owned();
            if name.trim_start_matches("./").trim_start_matches('/') == path {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes)?;
                return Ok(bytes);
            }
        }
    }
    anyhow::bail!("the image has no /{path}")
}
