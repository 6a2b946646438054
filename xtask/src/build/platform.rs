//! Where an image runs (OCI's `platform`, `linux/amd64`), and the check
//! that a binary packed into it runs there: its ELF header's class,
//! machine and OS ABI (the ELF specification, `<elf.h>`), read with the
//! `object` crate. A binary built for the host of a Mac, or for an arm64
//! laptop, packed into an image for amd64 nodes, would die in the pod
//! with `exec format error`; it is refused here instead, naming both.

use std::fmt;

use anyhow::{Result, bail};
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::{Endianness, FileKind, elf};

/// A CPU architecture images are built for (OCI's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    Amd64,
    Arm64,
}

/// An image's platform: always Linux, on an architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub arch: Arch,
}

impl Platform {
    pub const LINUX_AMD64: Self = Self { arch: Arch::Amd64 };
    pub const LINUX_ARM64: Self = Self { arch: Arch::Arm64 };

    /// An OCI platform string: `linux/amd64`, `linux/arm64` (also
    /// `linux/arm64/v8`, the variant arm64 images carry), in any case,
    /// with the CPU names containerd's `platforms.Normalize` also takes
    /// (`x86_64`, `aarch64`).
    ///
    /// # Errors
    /// Another OS or architecture, naming the ones supported.
    pub fn parse(text: &str) -> Result<Self> {
        let arch = match text.trim().to_ascii_lowercase().as_str() {
            "" => bail!(
                "an empty platform: give os/architecture values separated by commas, such as \
                 linux/amd64,linux/arm64"
            ),
            "linux/amd64" | "linux/x86_64" | "linux/x86-64" => Arch::Amd64,
            "linux/arm64" | "linux/arm64/v8" | "linux/aarch64" => Arch::Arm64,
            other => bail!(
                "platform {other:?}: give linux/amd64 or linux/arm64 (os/architecture, as OCI \
                 and `docker build --platform` name them)"
            ),
        };
        Ok(Self { arch })
    }

    /// The platform a container engine or a node reports: `os/arch`, the
    /// CPU in Go's names (Kubernetes' `status.nodeInfo`, podman's `docker
    /// info`: `linux/amd64`) or the kernel's (Docker Engine's `docker
    /// info`: `linux/x86_64`).
    ///
    /// # Errors
    /// Another OS (images are Linux ones), or a CPU images are not built
    /// for.
    pub fn of_reported(text: &str) -> Result<Self> {
        let text = text.trim();
        let found = match text.split_once('/') {
            Some(("linux", "amd64" | "x86_64")) => Some(Self::LINUX_AMD64),
            Some(("linux", "arm64" | "aarch64")) => Some(Self::LINUX_ARM64),
            _ => None,
        };
        match found {
            Some(p) => Ok(p),
            None => bail!(
                "machines of platform {text:?}: images are built for linux/amd64 and linux/arm64"
            ),
        }
    }

    /// The Linux platform of a CPU `arch` as Rust names it
    /// (`std::env::consts::ARCH`: `x86_64`, `aarch64`).
    pub fn of_rust_arch(arch: &str) -> Option<Self> {
        match arch {
            "x86_64" => Some(Self::LINUX_AMD64),
            "aarch64" => Some(Self::LINUX_ARM64),
            _ => None,
        }
    }

    /// OCI's (and Debian's) architecture name: `amd64`, `arm64`.
    pub fn oci_arch(self) -> &'static str {
        match self.arch {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Rust's name of the CPU: the first part of a target triple.
    pub fn rust_arch(self) -> &'static str {
        match self.arch {
            Arch::Amd64 => "x86_64",
            Arch::Arm64 => "aarch64",
        }
    }

    /// Every platform images are built for.
    pub const ALL: [Self; 2] = [Self::LINUX_AMD64, Self::LINUX_ARM64];

    /// The ELF `e_machine` of its binaries.
    fn elf_machine(self) -> u16 {
        match self.arch {
            Arch::Amd64 => elf::EM_X86_64,
            Arch::Arm64 => elf::EM_AARCH64,
        }
    }
}

/// The platform of the images this host's builds go into: Linux on the
/// host's CPU (amd64 where images are not built for it). The binaries
/// themselves are Linux binaries only on a Linux host (`toolchain`); the
/// image step checks each (`check_binary`).
pub fn host_platform() -> Platform {
    Platform::of_rust_arch(std::env::consts::ARCH).unwrap_or(Platform::LINUX_AMD64)
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "linux/{}", self.oci_arch())
    }
}

/// Refuses `bytes` (the file `what`, as the error names it) unless it is
/// a 64-bit little-endian Linux ELF executable or shared object for
/// `platform`'s architecture. Reads the header only.
///
/// # Errors
/// Another format (Mach-O, PE, a script), class, machine, OS ABI or type,
/// naming what the file is and what the image needs.
pub fn check_binary(what: &str, bytes: &[u8], platform: Platform) -> Result<()> {
    let refuse = |is: String| -> Result<()> {
        bail!(
            "{what} is {is}, and the build is for {platform}: its images need Linux ELF \
             binaries of that architecture (`cargo xtask doctor` says how this host builds them)"
        )
    };
    match FileKind::parse(bytes) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return refuse("a 32-bit ELF binary".into()),
        Ok(FileKind::MachO32 | FileKind::MachO64 | FileKind::MachOFat32 | FileKind::MachOFat64) => {
            return refuse("a Mach-O (macOS) binary".into());
        }
        Ok(FileKind::Pe32 | FileKind::Pe64) => return refuse("a PE (Windows) binary".into()),
        Ok(other) => return refuse(format!("not an executable ({other:?})")),
        Err(_) => return refuse("not an executable (no ELF header)".into()),
    }
    let Ok(header) = elf::FileHeader64::<Endianness>::parse(bytes) else {
        return refuse("a truncated ELF file".into());
    };
    let Ok(endian) = header.endian() else {
        return refuse("an ELF file of unknown byte order".into());
    };
    if header.e_ident().data != elf::ELFDATA2LSB {
        return refuse("a big-endian ELF binary".into());
    }
    let machine = header.e_machine(endian);
    if machine != platform.elf_machine() {
        let is = match machine {
            elf::EM_X86_64 => "an x86-64 binary (linux/amd64)".to_string(),
            elf::EM_AARCH64 => "an AArch64 binary (linux/arm64)".to_string(),
            other => format!("an ELF binary for machine {other} (e_machine)"),
        };
        return refuse(is);
    }
    let abi = header.e_ident().os_abi;
    if abi != elf::ELFOSABI_NONE && abi != elf::ELFOSABI_GNU {
        return refuse(format!("an ELF binary for another OS (OS ABI {abi})"));
    }
    let kind = header.e_type(endian);
    if kind != elf::ET_EXEC && kind != elf::ET_DYN {
        return refuse(format!(
            "an ELF file that is not an executable (e_type {kind})"
        ));
    }
    Ok(())
}

/// Refuses `bytes` (the file `what`) when it needs a dynamic loader (an
/// ELF `PT_INTERP` segment, as a glibc-linked binary has): an image on an
/// empty base has none, and the pod would fail with "no such file or
/// directory". Call it after `check_binary`.
///
/// # Errors
/// The binary names an interpreter, or its program headers cannot be read.
pub fn check_static(what: &str, bytes: &[u8]) -> Result<()> {
    let header = elf::FileHeader64::<Endianness>::parse(bytes)?;
    let endian = header.endian()?;
    let interpreter = header
        .program_headers(endian, bytes)?
        .iter()
        .find(|p| p.p_type(endian) == elf::PT_INTERP)
        .and_then(|p| p.interpreter(endian, bytes).ok().flatten())
        .map(|i| String::from_utf8_lossy(i).into_owned());
    if let Some(interpreter) = interpreter {
        bail!(
            "{what} is linked dynamically (it needs the loader {interpreter}), and the image has \
             no C runtime (FROM scratch): build it statically (the native build, or zigbuild and \
             cross without --glibc)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-byte ELF64 little-endian header: executable (`ET_DYN`, as a
    /// PIE is) for `machine`, with `abi`.
    fn header(machine: u16, abi: u8) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = elf::ELFCLASS64;
        h[5] = elf::ELFDATA2LSB;
        h[6] = elf::EV_CURRENT;
        h[7] = abi;
        h[16..18].copy_from_slice(&elf::ET_DYN.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[20..24].copy_from_slice(&1u32.to_le_bytes());
        h[52..54].copy_from_slice(&64u16.to_le_bytes());
        h
    }

    #[test]
    fn platforms_parse_as_oci_names_them() -> Result<()> {
        assert_eq!(Platform::parse("linux/amd64")?, Platform::LINUX_AMD64);
        assert_eq!(Platform::parse("linux/arm64/v8")?, Platform::LINUX_ARM64);
        // The CPU names and case docker also takes.
        assert_eq!(Platform::parse("linux/x86_64")?, Platform::LINUX_AMD64);
        assert_eq!(Platform::parse("Linux/AMD64")?, Platform::LINUX_AMD64);
        assert_eq!(Platform::parse("linux/aarch64")?, Platform::LINUX_ARM64);
        let empty = Platform::parse(" ").err().map(|e| e.to_string());
        assert!(
            empty.is_some_and(|e| e.contains("an empty platform")),
            "an empty entry of a list is named as such"
        );
        for wrong in ["darwin/arm64", "amd64", "linux/386"] {
            let err = Platform::parse(wrong).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains(&format!("{wrong:?}"))
                        && e.contains("linux/amd64 or linux/arm64")),
                "{wrong}: {err:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn what_engines_and_nodes_report_is_read_in_either_naming() -> Result<()> {
        assert_eq!(
            Platform::of_reported("linux/x86_64\n")?,
            Platform::LINUX_AMD64
        );
        assert_eq!(Platform::of_reported("linux/amd64")?, Platform::LINUX_AMD64);
        assert_eq!(
            Platform::of_reported("linux/aarch64")?,
            Platform::LINUX_ARM64
        );
        assert_eq!(Platform::of_reported("linux/arm64")?, Platform::LINUX_ARM64);
        let err = Platform::of_reported("windows/amd64")
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("\"windows/amd64\"") && e.contains("linux/arm64")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn platforms_are_named_as_oci_names_them() {
        assert_eq!(
            Platform::of_rust_arch("x86_64"),
            Some(Platform::LINUX_AMD64)
        );
        assert_eq!(
            Platform::of_rust_arch("aarch64"),
            Some(Platform::LINUX_ARM64)
        );
        assert_eq!(Platform::of_rust_arch("riscv64"), None);
        assert_eq!(Platform::LINUX_ARM64.to_string(), "linux/arm64");
        assert_eq!(Platform::LINUX_AMD64.oci_arch(), "amd64");
    }

    #[test]
    fn a_binary_of_the_images_architecture_passes() -> Result<()> {
        check_binary("amd64", &header(elf::EM_X86_64, 0), Platform::LINUX_AMD64)?;
        check_binary("arm64", &header(elf::EM_AARCH64, 3), Platform::LINUX_ARM64)?;
        // A real one: the binary running this test, built for this host.
        let me = std::fs::read(std::env::current_exe()?)?;
        if let Some(host) = Platform::of_rust_arch(std::env::consts::ARCH)
            && cfg!(target_os = "linux")
        {
            check_binary("this test", &me, host)?;
        }
        Ok(())
    }

    #[test]
    fn a_binary_of_another_architecture_is_refused_naming_both() {
        let err = check_binary(
            "target/release/test-api",
            &header(elf::EM_AARCH64, 0),
            Platform::LINUX_AMD64,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.starts_with("target/release/test-api is an AArch64 binary (linux/arm64)")
                && err.contains("the build is for linux/amd64"),
            "{err}"
        );
        let err = check_binary("x", &header(elf::EM_X86_64, 0), Platform::LINUX_ARM64)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("x86-64") && err.contains("linux/arm64"),
            "{err}"
        );
    }

    #[test]
    fn a_binary_that_needs_a_loader_is_refused_for_an_empty_base() -> Result<()> {
        // The test binary itself is linked dynamically, as cargo links tests.
        let me = std::fs::read(std::env::current_exe()?)?;
        if cfg!(target_os = "linux") {
            let err = check_static("this test", &me).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("this test is linked dynamically")
                        && e.contains("needs the loader /lib")
                        && e.contains("FROM scratch")),
                "{err:?}"
            );
        }
        // A header without program headers needs no loader.
        check_static("static", &header(elf::EM_X86_64, 0))?;
        Ok(())
    }

    #[test]
    fn what_is_not_a_linux_elf_executable_is_refused_saying_what_it_is() {
        let macho = [0xcf, 0xfa, 0xed, 0xfe, 0x0c, 0x00, 0x00, 0x01]
            .into_iter()
            .chain([0; 24])
            .collect::<Vec<u8>>();
        let mut freebsd = header(elf::EM_X86_64, elf::ELFOSABI_FREEBSD);
        let mut object_file = header(elf::EM_X86_64, 0);
        object_file[16..18].copy_from_slice(&elf::ET_REL.to_le_bytes());
        let cases: [(&[u8], &str); 5] = [
            (&macho, "a Mach-O (macOS) binary"),
            (b"#!/bin/sh\necho hi\n", "not an executable (no ELF header)"),
            (&[], "not an executable (no ELF header)"),
            (&freebsd, "for another OS (OS ABI 9)"),
            (&object_file, "not an executable (e_type 1)"),
        ];
        for (bytes, expected) in cases {
            let err = check_binary("bin", bytes, Platform::LINUX_AMD64)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(expected) && err.contains("linux/amd64"),
                "{expected}: {err}"
            );
        }
        freebsd.truncate(20);
        let err = check_binary("bin", &freebsd, Platform::LINUX_AMD64)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("bin is "), "{err}");
    }
}
