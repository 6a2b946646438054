//! The C runtime base of an image whose model server loads ONNX Runtime
//! (a shared C++ library: a static binary cannot load it), assembled as
//! distroless's `cc` image is: from Debian's own packages (libc6,
//! libgcc-s1, libstdc++6 of Debian 12 "bookworm"), each pinned by version
//! and by the SHA-256 of its `.deb` (as the archive's signed `Packages`
//! index lists it), each a layer of its own. Only shared libraries are
//! kept (under `lib/`, `lib64/`, `usr/lib/`), and of glibc's only those the
//! server and ONNX Runtime link (`GLIBC_LINKED`): no programs, no shell, no
//! documentation, no locales, iconv or NSS modules. The layers' files carry
//! the epoch 0, so every image on this base shares its layers.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::oci::{Contents, Entry};
use crate::ground::download;

/// Where Debian serves its packages (the `Filename`s below are relative to
/// it).
pub const MIRROR: &str = "https://deb.debian.org/debian";

/// One pinned Debian package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// OCI (and Debian) architecture name.
    pub arch: &'static str,
    /// Its path under `MIRROR` (the `Filename` field of `Packages`).
    pub filename: &'static str,
    pub sha256: &'static str,
}

/// bookworm's main archive as of point release 12.12 (`dists/bookworm/
/// main/binary-{amd64,arm64}/Packages`).
const PACKAGES: [Package; 6] = [
    Package {
        name: "libc6",
        version: "2.36-9+deb12u14",
        arch: "amd64",
        filename: "pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb",
        sha256: "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf",
    },
    Package {
        name: "libgcc-s1",
        version: "12.2.0-14+deb12u1",
        arch: "amd64",
        filename: "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_amd64.deb",
        sha256: "3016e62cb4b7cd8038822870601f5ed131befe942774d0f745622cc77d8a88f7",
    },
    Package {
        name: "libstdc++6",
        version: "12.2.0-14+deb12u1",
        arch: "amd64",
        filename: "pool/main/g/gcc-12/libstdc++6_12.2.0-14+deb12u1_amd64.deb",
        sha256: "5cd3171216d4ab0fc911cfe9c35509bf2dd8f47761c43b7f6a4296701551a24d",
    },
    Package {
        name: "libc6",
        version: "2.36-9+deb12u14",
        arch: "arm64",
        filename: "pool/main/g/glibc/libc6_2.36-9+deb12u14_arm64.deb",
        sha256: "01f4330719fd4f65580e16ea5a0527f372fca750e8f588d26deaf09f2d3b1cf4",
    },
    Package {
        name: "libgcc-s1",
        version: "12.2.0-14+deb12u1",
        arch: "arm64",
        filename: "pool/main/g/gcc-12/libgcc-s1_12.2.0-14+deb12u1_arm64.deb",
        sha256: "576926b283613db80168ddf76380a3bd877602778cf0d226caa7bfbfa71eacf3",
    },
    Package {
        name: "libstdc++6",
        version: "12.2.0-14+deb12u1",
        arch: "arm64",
        filename: "pool/main/g/gcc-12/libstdc++6_12.2.0-14+deb12u1_arm64.deb",
        sha256: "26e138c677a985775331373828a6c286c551ff397cb735d00e2383cb273d1cb2",
    },
];

/// glibc's libraries the model server and ONNX Runtime 1.32's
/// `libonnxruntime.so` load: their `DT_NEEDED` entries (`readelf -d`), and
/// the dynamic loader of each architecture. The rest of libc6 (libmvec,
/// libresolv, NSS modules, libthread_db, ...) is nothing the server loads:
/// it binds to an IP address and resolves no names.
const GLIBC_LINKED: [&str; 7] = [
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "librt.so.1",
    "libpthread.so.0",
];

/// The packages of the base for `arch`, in layer order.
///
/// # Errors
/// An architecture the base is not pinned for.
pub fn packages(arch: &str) -> Result<Vec<Package>> {
    let found: Vec<Package> = PACKAGES
        .iter()
        .copied()
        .filter(|p| p.arch == arch)
        .collect();
    if found.is_empty() {
        bail!("the C runtime base is pinned for amd64 and arm64, not {arch}");
    }
    Ok(found)
}

/// The base's layers for `arch`: per package, its `name=version` and the
/// files it contributes. The `.deb`s are downloaded into `cache` unless
/// kept there.
///
/// # Errors
/// As `packages`; a download failing or with another digest; a package
/// that is not a `.deb` this can read.
pub fn layers(cache: &Path, arch: &str) -> Result<Vec<(String, Vec<Entry>)>> {
    packages(arch)?
        .into_iter()
        .map(|p| {
            let file = p.filename.rsplit('/').next().unwrap_or(p.filename);
            let url = format!("{MIRROR}/{}", p.filename);
            let deb = download::pinned(cache, file, &url, p.sha256)?;
            let entries = libraries(&deb, p.name).with_context(|| format!("reading {file}"))?;
            Ok((format!("{}={}", p.name, p.version), entries))
        })
        .collect()
}

/// The shared libraries the `.deb` of package `name` installs: its
/// `data.tar.xz` (an `ar` member) read, keeping regular files and symbolic
/// links under `lib/`, `lib64/` and `usr/lib/` that `kept` keeps.
///
/// # Errors
/// Not an `ar` archive; no `data.tar.xz`; a hard link or another entry
/// type among the kept paths.
pub fn libraries(deb: &[u8], name: &str) -> Result<Vec<Entry>> {
    let mut ar = ar::Archive::new(deb);
    while let Some(member) = ar.next_entry() {
        let member = member.context("not a Debian package (an ar archive)")?;
        if member.header().identifier() != b"data.tar.xz" {
            continue;
        }
        let xz = lzma_rust2::XzReader::new(member, true);
        let mut tar = tar::Archive::new(xz);
        let mut out = Vec::new();
        for entry in tar.entries().context("reading data.tar.xz")? {
            let mut entry = entry.context("reading data.tar.xz")?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let path = raw
                .trim_start_matches("./")
                .trim_end_matches('/')
                .to_string();
            if !kept(name, &path) {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Directory => {}
                tar::EntryType::Regular => {
                    let mode = entry.header().mode()?;
                    let mut bytes = Vec::new();
                    entry.read_to_end(&mut bytes)?;
                    let mode = if mode & 0o111 == 0 { 0o644 } else { 0o755 };
                    out.push(Entry {
                        path,
                        contents: Contents::File(bytes, mode),
                    });
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name()?
                        .with_context(|| format!("{path}: a symbolic link without a target"))?;
                    out.push(Entry {
                        path,
                        contents: Contents::Link(target.to_string_lossy().into_owned()),
                    });
                }
                other => bail!("{path}: a {other:?} entry, which the base does not take"),
            }
        }
        return Ok(out);
    }
    bail!("no data.tar.xz in the package")
}

/// Whether the base keeps `path` (relative, no leading `./`) of package
/// `name`: a file in a library folder, not in `gconv/` or `locale/`, and of
/// libc6 only what `GLIBC_LINKED` names.
fn kept(name: &str, path: &str) -> bool {
    let library_dir = ["lib/", "lib64/", "usr/lib/"]
        .iter()
        .any(|dir| path.starts_with(dir));
    let file = path.rsplit('/').next().unwrap_or(path);
    library_dir
        && !path
            .split('/')
            .any(|part| part == "gconv" || part == "locale")
        && (name != "libc6" || GLIBC_LINKED.contains(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_shared_libraries_the_server_loads_are_kept() {
        for (name, path) in [
            ("libc6", "lib/x86_64-linux-gnu/libc.so.6"),
            ("libc6", "lib/x86_64-linux-gnu/libm.so.6"),
            ("libc6", "lib64/ld-linux-x86-64.so.2"),
            ("libc6", "lib/aarch64-linux-gnu/libpthread.so.0"),
            ("libstdc++6", "usr/lib/x86_64-linux-gnu/libstdc++.so.6"),
            ("libstdc++6", "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30"),
            ("libgcc-s1", "lib/x86_64-linux-gnu/libgcc_s.so.1"),
        ] {
            assert!(kept(name, path), "{path}");
        }
        for (name, path) in [
            ("libc6", "usr/bin/ldd"),
            ("libc6", "sbin/ldconfig"),
            ("libc6", "usr/share/doc/libc6/copyright"),
            ("libc6", "usr/lib/x86_64-linux-gnu/gconv/libCNS.so"),
            ("libc6", "usr/lib/locale/C.utf8/LC_CTYPE"),
            ("libc6", "lib/x86_64-linux-gnu/libmvec.so.1"),
            ("libc6", "lib/x86_64-linux-gnu/libnss_dns.so.2"),
            ("libc6", "etc/ld.so.conf.d/x86_64-linux-gnu.conf"),
            (
                "libstdc++6",
                "usr/share/gdb/auto-load/libstdc++.so.6.0.30-gdb.py",
            ),
        ] {
            assert!(!kept(name, path), "{path}");
        }
    }

    #[test]
    fn each_architecture_has_the_three_packages_pinned() -> Result<()> {
        for arch in ["amd64", "arm64"] {
            let names: Vec<&str> = packages(arch)?.iter().map(|p| p.name).collect();
            assert_eq!(names, ["libc6", "libgcc-s1", "libstdc++6"]);
            for p in packages(arch)? {
                assert!(
                    p.filename.ends_with(&format!("_{}_{arch}.deb", p.version)),
                    "{p:?}"
                );
                assert_eq!(p.sha256.len(), 64, "{p:?}");
            }
        }
        assert!(packages("s390x").is_err());
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_package_is_refused() {
        let err = libraries(b"not an ar archive", "libc6").err();
        assert!(err.is_some());
    }
}
