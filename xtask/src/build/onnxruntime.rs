//! The ONNX Runtime library a model server with `runtime = "onnxruntime"`
//! loads (`ORT_DYLIB_PATH`): the one the `onnxruntime` wheel on PyPI ships,
//! pinned by version and by the wheel's SHA-256 (PyPI's own digest, on
//! its simple index), downloaded once into the target directory and taken
//! out of the wheel there. Nothing else is downloaded and nothing is linked
//! at build time (`ort`'s `load-dynamic`).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::ground::{download, files};

/// The ONNX Runtime release (the `onnxruntime` wheel's version); `ort`
/// 2.0.0-rc.15 speaks its C API.
pub const VERSION: &str = "1.32.0";

/// One platform's wheel: where PyPI serves it and its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wheel {
    /// OCI architecture name (amd64, arm64).
    pub arch: &'static str,
    pub url: &'static str,
    pub sha256: &'static str,
}

/// The CPython 3.11 manylinux wheels of `VERSION` (every CPython wheel of
/// a release carries the same library).
const WHEELS: [Wheel; 2] = [
    Wheel {
        arch: "amd64",
        url: "https://files.pythonhosted.org/packages/1d/46/e6f356c9539d2eed44126de3421a81e217da2ad91b22dc11b379cb1e384f/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
        sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
    },
    Wheel {
        arch: "arm64",
        url: "https://files.pythonhosted.org/packages/b7/30/103820b32e9dc1d1fcfc5b519fd2de5bd699d25a25895caf5d726350d1b5/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl",
        sha256: "2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c",
    },
];

/// The library's file name, in the wheel (under `onnxruntime/capi/`) and
/// where it is kept.
pub fn file_name() -> String {
    format!("libonnxruntime.so.{VERSION}")
}

/// The wheel for `arch` (OCI name).
///
/// # Errors
/// An architecture with no Linux wheel.
pub fn wheel(arch: &str) -> Result<Wheel> {
    WHEELS
        .iter()
        .copied()
        .find(|w| w.arch == arch)
        .with_context(|| {
            format!(
                "ONNX Runtime {VERSION} has no Linux wheel for {arch}; use runtime = \"tract\" \
                 (built in) on this platform"
            )
        })
}

/// Where `arch`'s library is kept under `target` (cargo's target
/// directory): `kube-mlops/onnxruntime-<VERSION>-<arch>/<file_name>`.
pub fn kept_at(target: &Path, arch: &str) -> PathBuf {
    target
        .join("kube-mlops")
        .join(format!("onnxruntime-{VERSION}-{arch}"))
        .join(file_name())
}

/// The library for `arch`, taken out of its wheel (downloaded into
/// `target`'s `kube-mlops/wheels/` unless kept there) unless kept already
/// under `target`; its path.
///
/// # Errors
/// No wheel for `arch`; the download failing (with the URL, so that it can
/// be fetched by hand); a wheel whose SHA-256 is not the pinned one; a
/// wheel without the library.
pub fn provide(target: &Path, arch: &str) -> Result<PathBuf> {
    let wheel = wheel(arch)?;
    let path = kept_at(target, arch);
    if path.is_file() {
        return Ok(path);
    }
    let file = wheel.url.rsplit('/').next().unwrap_or("onnxruntime.whl");
    let bytes = download::pinned(
        &target.join("kube-mlops").join("wheels"),
        file,
        wheel.url,
        wheel.sha256,
    )?;
    let library = library_of(&bytes, &wheel)?;
    files::write_whole(&path, &library)?;
    Ok(path)
}

/// The library out of `wheel`'s bytes, after checking their SHA-256.
///
/// # Errors
/// A digest that is not the pinned one; not a zip; no library inside.
pub fn library_of(bytes: &[u8], wheel: &Wheel) -> Result<Vec<u8>> {
    download::check(bytes, wheel.url, wheel.sha256)?;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .context("the onnxruntime wheel is not a zip archive")?;
    let name = format!("onnxruntime/capi/{}", file_name());
    let mut entry = zip
        .by_name(&name)
        .with_context(|| format!("the onnxruntime wheel has no {name}"))?;
    let mut library = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
    entry
        .read_to_end(&mut library)
        .with_context(|| format!("reading {name} out of the onnxruntime wheel"))?;
    Ok(library)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::io::Write;

    fn wheel_with(files: &[(&str, &[u8])]) -> Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())?;
            zip.write_all(bytes)?;
        }
        Ok(zip.finish()?.into_inner())
    }

    fn pinned(bytes: &[u8]) -> Wheel {
        let digest: &'static str =
            Box::leak(format!("{:x}", Sha256::digest(bytes)).into_boxed_str());
        Wheel {
            arch: "amd64",
            url: "https://files.example/onnxruntime.whl",
            sha256: digest,
        }
    }

    #[test]
    fn the_library_comes_out_of_a_wheel_with_the_pinned_digest() -> Result<()> {
        let name = format!("onnxruntime/capi/{}", file_name());
        let bytes = wheel_with(&[("onnxruntime/__init__.py", b""), (&name, b"\x7fELF lib")])?;
        assert_eq!(library_of(&bytes, &pinned(&bytes))?, b"\x7fELF lib");
        Ok(())
    }

    #[test]
    fn another_digest_or_no_library_is_refused() -> Result<()> {
        let name = format!("onnxruntime/capi/{}", file_name());
        let bytes = wheel_with(&[(&name, b"lib")])?;
        let other = pinned(b"another wheel");
        let err = format!(
            "{:#}",
            library_of(&bytes, &other).err().context("accepted")?
        );
        assert!(
            err.contains("not the pinned") && err.contains(other.sha256),
            "{err}"
        );
        let empty = wheel_with(&[("onnxruntime/__init__.py", b"")])?;
        let err = format!(
            "{:#}",
            library_of(&empty, &pinned(&empty))
                .err()
                .context("accepted")?
        );
        assert!(err.contains(&name), "{err}");
        Ok(())
    }

    #[test]
    fn every_linux_platform_has_a_pinned_wheel_of_the_version() -> Result<()> {
        for arch in ["amd64", "arm64"] {
            let w = wheel(arch)?;
            assert!(w.url.contains(&format!("onnxruntime-{VERSION}-")), "{w:?}");
            assert_eq!(w.sha256.len(), 64);
        }
        let err = format!("{:#}", wheel("riscv64").err().context("accepted")?);
        assert!(err.contains("runtime = \"tract\""), "{err}");
        Ok(())
    }
}
