//! The `docker` builder: the committed Dockerfile of each service (FROM
//! scratch, the same non-root user) built by `docker build` from a staged
//! context holding the static binary and the image's files, then saved to
//! an archive so loading and pushing work as for native images.

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
    std::fs::write(
        rootfs.join("etc/passwd"),
        format!("nonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n"),
    )?;
    std::fs::write(rootfs.join("etc/group"), format!("nonroot:x:{UID}:\n"))?;
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
