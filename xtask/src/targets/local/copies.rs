//! The binaries the local target runs: a copy of each built binary in
//! `<run_dir>/bin/<service>-<sha256 prefix>`, taken and hashed in one read.
//! What starts is the very file that was hashed: a `cargo build` that
//! rewrites `target/<triple>/release/<bin>` between the build and the start
//! (another checkout's run, an editor's build-on-save) cannot swap it, and
//! the record's hash is the hash of what runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// A binary ready to run: its copy and the SHA-256 (hex) of its bytes.
pub struct Copy {
    pub path: PathBuf,
    pub sha256: String,
}

fn dir(run_dir: &Path) -> PathBuf {
    run_dir.join("bin")
}

fn named(run_dir: &Path, service: &str, sha256: &str) -> PathBuf {
    dir(run_dir).join(format!("{service}-{}", &sha256[..12]))
}

/// The SHA-256 (hex) of a file's bytes.
pub fn sha256(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    copy_hashed(&mut f, &mut std::io::sink())
        .with_context(|| format!("cannot read {}", path.display()))
}

/// Copies `src` to `dst`; returns the SHA-256 (hex) of the bytes copied.
fn copy_hashed(src: &mut impl Read, dst: &mut impl Write) -> std::io::Result<String> {
    struct Tee<'a, W> {
        hash: Sha256,
        to: &'a mut W,
    }
    impl<W: Write> Write for Tee<'_, W> {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.to.write_all(buf)?;
            self.hash.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.to.flush()
        }
    }
    let mut tee = Tee {
        hash: Sha256::new(),
        to: dst,
    };
    std::io::copy(src, &mut tee)?;
    Ok(format!("{:x}", tee.hash.finalize()))
}

/// The copy [`take`] would make, without making it (the plan under
/// `--dry-run`). Errors: the binary cannot be read.
pub fn would_take(run_dir: &Path, service: &str, binary: &Path) -> Result<Copy> {
    let sha256 = sha256(binary)?;
    Ok(Copy {
        path: named(run_dir, service, &sha256),
        sha256,
    })
}

/// Copies `binary` to `<run_dir>/bin/<service>-<first 12 hex of its
/// sha256>` (executable by its owner only), reading it once. An existing
/// copy with that name is kept: it has those bytes. Errors: the binary
/// cannot be read, or the copy cannot be written (disk full, permissions).
pub fn take(run_dir: &Path, service: &str, binary: &Path) -> Result<Copy> {
    let dir = dir(run_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut src = std::fs::File::open(binary)
        .with_context(|| format!("cannot read the built binary {}", binary.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{service}-"))
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let sha256 = copy_hashed(&mut src, &mut tmp)
        .with_context(|| format!("cannot copy {} into {}", binary.display(), dir.display()))?;
    let path = named(run_dir, service, &sha256);
    if !path.exists() {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o700))?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(Copy { path, sha256 })
}

/// Removes this service's copies other than `keep` (none: all of them).
/// Best effort: a copy that cannot be removed only takes space.
pub fn prune(run_dir: &Path, service: &str, keep: Option<&Path>) {
    let Ok(entries) = std::fs::read_dir(dir(run_dir)) else {
        return;
    };
    let prefix = format!("{service}-");
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        // `<service>-<12 hex>` exactly: `svc-a`'s copies are not `svc`'s.
        let ours = name
            .strip_prefix(&prefix)
            .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if ours && Some(e.path().as_path()) != keep {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_is_what_was_read_even_if_the_build_changes_after() -> Result<()> {
        let run = tempfile::tempdir()?;
        let built = run.path().join("model-server");
        std::fs::write(&built, b"first build")?;
        let first = take(run.path(), "svc", &built)?;
        // A later build rewrites the shared path: the copy keeps its bytes.
        std::fs::write(&built, b"second build")?;
        assert_eq!(std::fs::read(&first.path)?, b"first build");
        assert_eq!(first.sha256, sha256(&first.path)?);
        let second = take(run.path(), "svc", &built)?;
        assert_ne!(first.path, second.path);
        assert_eq!(second.sha256, sha256(&built)?);
        assert_eq!(would_take(run.path(), "svc", &built)?.path, second.path);
        // Another service's copies are not this one's.
        let other = take(run.path(), "svc-a", &built)?;
        prune(run.path(), "svc", Some(&second.path));
        assert!(!first.path.exists());
        assert!(second.path.exists() && other.path.exists());
        prune(run.path(), "svc", None);
        assert!(!second.path.exists() && other.path.exists());
        Ok(())
    }
}
