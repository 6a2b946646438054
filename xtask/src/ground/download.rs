//! Downloads pinned by SHA-256 (the ONNX Runtime wheel, Debian packages),
//! kept in a cache directory once checked: a second run reads the kept
//! file, and a changed or truncated download is refused, naming both
//! digests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::ground::files;

/// The most one download may be: 256 MB.
const LIMIT: u64 = 256 << 20;

/// The bytes of `url`, whose SHA-256 (lower-case hex) must be `sha256`,
/// from `dir/<file>` when kept there, else downloaded over HTTPS (the
/// system's trusted certificates) and kept.
///
/// # Errors
/// The download failing (naming the URL, to fetch it by hand); bytes with
/// another digest; the cache not writable.
pub fn pinned(dir: &Path, file: &str, url: &str, sha256: &str) -> Result<Vec<u8>> {
    let path: PathBuf = dir.join(file);
    if let Ok(bytes) = std::fs::read(&path)
        && hex_sha256(&bytes) == sha256
    {
        return Ok(bytes);
    }
    eprintln!("==> downloading {url}");
    let bytes = get(url).with_context(|| format!("downloading {url}"))?;
    check(&bytes, url, sha256)?;
    files::write_whole(&path, &bytes)?;
    Ok(bytes)
}

/// Refuses `bytes` from `url` unless their SHA-256 is `sha256`.
///
/// # Errors
/// Another digest.
pub fn check(bytes: &[u8], url: &str, sha256: &str) -> Result<()> {
    let digest = hex_sha256(bytes);
    if digest != sha256 {
        bail!(
            "{url} has SHA-256 {digest}, not the pinned {sha256}: refusing it (a changed or \
             truncated download)"
        );
    }
    Ok(())
}

fn hex_sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn get(url: &str) -> Result<Vec<u8>> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .connect_timeout(Duration::from_secs(30))
        .build()?;
    let resp = client.get(url).send()?.error_for_status()?;
    let mut bytes = Vec::new();
    resp.take(LIMIT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > LIMIT {
        bail!("the download is larger than {LIMIT} bytes");
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_file_with_the_pinned_digest_is_read_not_downloaded() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("x.deb"), b"kept")?;
        // An address nothing answers: reading the kept file must not ask.
        let got = pinned(
            dir.path(),
            "x.deb",
            "http://127.0.0.1:9/x.deb",
            &hex_sha256(b"kept"),
        )?;
        assert_eq!(got, b"kept");
        Ok(())
    }

    #[test]
    fn a_kept_file_with_another_digest_is_fetched_again_and_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("x.deb"), b"tampered")?;
        let err = pinned(
            dir.path(),
            "x.deb",
            "http://127.0.0.1:9/x.deb",
            &hex_sha256(b"kept"),
        )
        .err()
        .context("accepted")?;
        assert!(
            format!("{err:#}").contains("http://127.0.0.1:9/x.deb"),
            "{err:#}"
        );
        let err = check(b"other", "https://h/x", &hex_sha256(b"kept"))
            .err()
            .context("accepted")?;
        assert!(format!("{err:#}").contains("not the pinned"), "{err:#}");
        Ok(())
    }
}
