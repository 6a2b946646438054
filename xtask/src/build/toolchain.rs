//! How this host builds a platform's Linux binaries (issue 23): natively
//! on a Linux host of the same CPU (the static glibc build, `link`);
//! otherwise cross-compiled to a static musl binary, with `cargo
//! zigbuild` (zig from PyPI as the linker, the target's std from rustup)
//! or the user's own `cross`. The choice is a function of the host, the
//! platform and what is installed, so that every combination is tested
//! with the host faked; `Installed::detect` is what asks this machine.

use std::fmt;

use crate::image::platform::Platform;

/// The machine the xtask runs on, as Rust names it
/// (`std::env::consts::OS` and `ARCH`: `linux`/`macos`/`windows`,
/// `x86_64`/`aarch64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host<'a> {
    pub os: &'a str,
    pub arch: &'a str,
}

impl Host<'static> {
    /// This machine.
    pub fn here() -> Self {
        Self {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// What this host has that builds Linux binaries for another platform.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The Rust targets whose std rustup has installed (`rustup target
    /// list --installed`); `None` without rustup.
    pub rust_targets: Option<Vec<String>>,
    /// `cargo-zigbuild` on the `PATH`.
    pub zigbuild: bool,
    /// `zig` on the `PATH`, or Python's `ziglang` package (PyPI's zig,
    /// which cargo-zigbuild runs as `python3 -m ziglang`).
    pub zig: bool,
    /// `cross` on the `PATH` (it brings each target's toolchain in a
    /// container).
    pub cross: bool,
}

impl Installed {
    /// Asks this machine: rustup, the `PATH`, and `python3 -c "import
    /// ziglang"` when `zig` is not on the `PATH`.
    pub fn detect() -> Self {
        let on_path = |name: &str| which::which(name).is_ok();
        let rust_targets = std::process::Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            });
        let zig = on_path("zig")
            || std::process::Command::new("python3")
                .args(["-c", "import ziglang"])
                .output()
                .is_ok_and(|o| o.status.success());
        Self {
            rust_targets,
            zigbuild: on_path("cargo-zigbuild"),
            zig,
            cross: on_path("cross"),
        }
    }

    fn has_target(&self, triple: &str) -> bool {
        self.rust_targets
            .as_ref()
            .is_some_and(|t| t.iter().any(|t| t == triple))
    }
}

/// How a platform's binaries are built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Toolchain {
    /// `cargo build --target <triple>`: this Linux host's own CPU, linked
    /// statically against glibc (`link`).
    Native { triple: String },
    /// `cargo zigbuild --target <triple>`: a static musl binary, zig as
    /// the C compiler and linker.
    Zigbuild { triple: String },
    /// `cross build --target <triple>`: a static musl binary, built in
    /// cross's container.
    Cross { triple: String },
}

impl Toolchain {
    /// The target triple it builds for.
    pub fn triple(&self) -> &str {
        match self {
            Self::Native { triple } | Self::Zigbuild { triple } | Self::Cross { triple } => triple,
        }
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Native { triple } => write!(f, "cargo build --target {triple} (native, static)"),
            Self::Zigbuild { triple } => write!(f, "cargo zigbuild --target {triple}"),
            Self::Cross { triple } => write!(f, "cross build --target {triple}"),
        }
    }
}

/// A platform this host cannot build for yet, and the commands that
/// would let it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub platform: Platform,
    /// `os/arch` of the host.
    pub host: String,
    /// What to run for the zigbuild path, in order (only what is missing).
    pub zigbuild: Vec<String>,
}

impl Missing {
    /// What to do: the zigbuild path's commands, or cross.
    pub fn remedy(&self) -> String {
        format!(
            "run {}; or install cross (`cargo install cross`, with a container engine)",
            self.zigbuild
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(" and ")
        )
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} binaries cannot be built on this host ({}) yet: {}",
            self.platform,
            self.host,
            self.remedy()
        )
    }
}

impl std::error::Error for Missing {}

/// The musl triple of `platform` (`x86_64-unknown-linux-musl`): static
/// binaries for an empty base, whatever builds them.
pub fn musl_triple(platform: Platform) -> String {
    format!("{}-unknown-linux-musl", platform.rust_arch())
}

/// How `host` builds `platform`'s binaries with what is `installed`:
/// natively where the host is Linux on the platform's CPU; else with
/// zigbuild when it, zig and the musl std are all there; else with
/// cross.
///
/// # Errors
/// `Missing`, with the commands that install the zigbuild path's missing
/// parts.
pub fn choose(
    host: Host<'_>,
    platform: Platform,
    installed: &Installed,
) -> Result<Toolchain, Missing> {
    if host.os == "linux" && Platform::of_rust_arch(host.arch) == Some(platform) {
        return Ok(Toolchain::Native {
            triple: format!("{}-unknown-linux-gnu", platform.rust_arch()),
        });
    }
    let triple = musl_triple(platform);
    let has_std = installed.has_target(&triple);
    if installed.zigbuild && installed.zig && has_std {
        return Ok(Toolchain::Zigbuild { triple });
    }
    if installed.cross {
        return Ok(Toolchain::Cross { triple });
    }
    let mut zigbuild = Vec::new();
    if installed.rust_targets.is_none() {
        zigbuild.push("curl --proto '=https' -sSf https://sh.rustup.rs | sh".to_string());
    }
    if !has_std {
        zigbuild.push(format!("rustup target add {triple}"));
    }
    match (installed.zig, installed.zigbuild) {
        (false, false) => zigbuild.push("pip install ziglang cargo-zigbuild".into()),
        (false, true) => zigbuild.push("pip install ziglang".into()),
        (true, false) => zigbuild.push("pip install cargo-zigbuild".into()),
        (true, true) => {}
    }
    Err(Missing {
        platform,
        host: host.to_string(),
        zigbuild,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINUX_X86: Host<'static> = Host {
        os: "linux",
        arch: "x86_64",
    };
    const LINUX_ARM: Host<'static> = Host {
        os: "linux",
        arch: "aarch64",
    };
    const MAC_ARM: Host<'static> = Host {
        os: "macos",
        arch: "aarch64",
    };
    const MAC_X86: Host<'static> = Host {
        os: "macos",
        arch: "x86_64",
    };
    const WINDOWS: Host<'static> = Host {
        os: "windows",
        arch: "x86_64",
    };

    fn installed(targets: &[&str], zigbuild: bool, zig: bool, cross: bool) -> Installed {
        Installed {
            rust_targets: Some(targets.iter().map(ToString::to_string).collect()),
            zigbuild,
            zig,
            cross,
        }
    }

    #[test]
    fn a_linux_host_builds_its_own_cpu_natively_whatever_else_is_there() {
        for tools in [
            Installed::default(),
            installed(&["x86_64-unknown-linux-musl"], true, true, true),
        ] {
            assert_eq!(
                choose(LINUX_X86, Platform::LINUX_AMD64, &tools),
                Ok(Toolchain::Native {
                    triple: "x86_64-unknown-linux-gnu".into()
                })
            );
            assert_eq!(
                choose(LINUX_ARM, Platform::LINUX_ARM64, &tools).map(|t| t.to_string()),
                Ok("cargo build --target aarch64-unknown-linux-gnu (native, static)".into())
            );
        }
    }

    #[test]
    fn every_other_pair_cross_compiles_to_musl_with_zigbuild_first() {
        let pairs = [
            (LINUX_X86, Platform::LINUX_ARM64),
            (LINUX_ARM, Platform::LINUX_AMD64),
            (MAC_ARM, Platform::LINUX_ARM64),
            (MAC_ARM, Platform::LINUX_AMD64),
            (MAC_X86, Platform::LINUX_AMD64),
            (WINDOWS, Platform::LINUX_AMD64),
        ];
        for (host, platform) in pairs {
            let triple = musl_triple(platform);
            let all = installed(&[&triple], true, true, true);
            assert_eq!(
                choose(host, platform, &all),
                Ok(Toolchain::Zigbuild {
                    triple: triple.clone()
                }),
                "{host} -> {platform}"
            );
            // Without zig, the musl std or zigbuild, cross if it is there.
            for partial in [
                installed(&[&triple], true, false, true),
                installed(&[], true, true, true),
                installed(&[&triple], false, true, true),
            ] {
                assert_eq!(
                    choose(host, platform, &partial),
                    Ok(Toolchain::Cross {
                        triple: triple.clone()
                    }),
                    "{host} -> {platform}: {partial:?}"
                );
            }
        }
    }

    #[test]
    fn what_is_missing_is_said_as_the_commands_that_install_it() {
        let missing = |tools: &Installed| {
            choose(MAC_ARM, Platform::LINUX_AMD64, tools)
                .err()
                .map(|m| m.zigbuild)
                .unwrap_or_default()
        };
        assert_eq!(
            missing(&installed(&["aarch64-apple-darwin"], false, false, false)),
            [
                "rustup target add x86_64-unknown-linux-musl",
                "pip install ziglang cargo-zigbuild"
            ]
        );
        assert_eq!(
            missing(&installed(
                &["x86_64-unknown-linux-musl"],
                true,
                false,
                false
            )),
            ["pip install ziglang"]
        );
        assert_eq!(
            missing(&installed(&[], false, true, false)),
            [
                "rustup target add x86_64-unknown-linux-musl",
                "pip install cargo-zigbuild"
            ]
        );
        let no_rustup = Installed {
            rust_targets: None,
            zigbuild: true,
            zig: true,
            cross: false,
        };
        assert_eq!(missing(&no_rustup).len(), 2);
        assert!(missing(&no_rustup)[0].contains("sh.rustup.rs"));

        let said = choose(
            LINUX_X86,
            Platform::LINUX_ARM64,
            &installed(&[], false, false, false),
        )
        .err()
        .map(|m| m.to_string())
        .unwrap_or_default();
        assert_eq!(
            said,
            "linux/arm64 binaries cannot be built on this host (linux/x86_64) yet: run \
             `rustup target add aarch64-unknown-linux-musl` and `pip install ziglang \
             cargo-zigbuild`; or install cross (`cargo install cross`, with a container engine)"
        );
    }
}
