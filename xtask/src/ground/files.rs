//! Files the xtask keeps: written whole (into a temporary file beside the
//! destination, then renamed over it, so a reader, or a binary running
//! from the old file, never sees half a file, and two writers at once each
//! leave a whole one), and named after the folder they belong to.

use anyhow::{Context, Result};
use std::fs::{File, Permissions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Replaces `path` whole with what `fill` writes, the file's permission
/// bits set to `mode` (0o644, 0o755). Creates the parent folder. On an
/// error nothing is left behind and `path` is as it was.
///
/// # Errors
/// The folder or the file cannot be written; `fill`'s error.
pub fn write_whole_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<()>,
) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut aside = tempfile::Builder::new()
        .prefix(".")
        .suffix(".partial")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    fill(aside.as_file_mut())?;
    aside
        .persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Replaces `path` whole with `bytes` (mode 0o644).
///
/// # Errors
/// As [`write_whole_with`].
pub fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    write_whole_with(path, 0o644, |file| {
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", path.display()))
    })
}

/// Replaces `to` whole with a copy of `from`, keeping its permission bits.
///
/// # Errors
/// `from` unreadable; as [`write_whole_with`].
pub fn copy_whole(from: &Path, to: &Path) -> Result<()> {
    let mut source = File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mode = source
        .metadata()
        .with_context(|| format!("cannot read {}", from.display()))?
        .permissions()
        .mode();
    write_whole_with(to, mode & 0o7777, |file| {
        std::io::copy(&mut source, file)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        Ok(())
    })
}

/// 16 hex digits of the SHA-256 of `path` made absolute: a name for what
/// belongs to that folder (a checkout's kept binaries, a run folder's lock).
pub fn path_id(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let hash = format!(
        "{:x}",
        Sha256::digest(absolute.as_os_str().as_encoded_bytes())
    );
    hash[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_file_replaces_the_old_one_and_a_failed_one_leaves_it() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("sub").join("kept.bin");
        write_whole(&path, b"first")?;
        write_whole(&path, b"second")?;
        assert_eq!(std::fs::read(&path)?, b"second");
        let failed = write_whole_with(&path, 0o644, |file| {
            file.write_all(b"half")?;
            anyhow::bail!("interrupted")
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path)?, b"second");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap_or(dir.path()))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("kept.bin")]);
        Ok(())
    }

    #[test]
    fn a_copy_keeps_the_mode() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let from = dir.path().join("tool");
        std::fs::write(&from, b"#!")?;
        std::fs::set_permissions(&from, Permissions::from_mode(0o755))?;
        let to = dir.path().join("kept").join("tool");
        copy_whole(&from, &to)?;
        assert_eq!(std::fs::read(&to)?, b"#!");
        assert_eq!(std::fs::metadata(&to)?.permissions().mode() & 0o777, 0o755);
        Ok(())
    }

    #[test]
    fn a_folder_has_one_id_and_another_folder_another() {
        let a = path_id(Path::new("/tmp/y"));
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, path_id(Path::new("/tmp/y")));
        assert_ne!(a, path_id(Path::new("/tmp/z")));
    }
}
