//! How this host builds a platform's Linux binaries (issue 23): natively
//! on a Linux host of the same CPU (the static glibc build, `link`);
//! otherwise cross-compiled to a static musl binary, with `cargo
//! zigbuild` (zig from PyPI as the linker, the target's std from rustup)
//! or the user's own `cross`; or compiled inside the docker builder's
//! multi-stage Dockerfile, on the pinned Rust image (`Toolchain::Docker`,
//! `image build --builder docker`). The choice is a function of the host, the
//! platform and what is installed, so that every combination is tested
//! with the host faked; `Installed::detect` is what asks this machine.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::build::platform::Platform;
use crate::ground::runner::{Blocked, Cause};

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
        // PyPI's zig, for whichever Python this host calls by which name
        // (`python` and the `py` launcher on Windows).
        let zig = on_path("zig")
            || ["python3", "python", "py"].into_iter().any(|python| {
                std::process::Command::new(python)
                    .args(["-c", "import ziglang"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        Self {
            rust_targets,
            zigbuild: on_path("cargo-zigbuild"),
            zig,
            cross: on_path("cross"),
        }
    }

    /// The commands that install what zigbuild lacks on `host` to build
    /// for `triple` (the std's own triple, no glibc version), in order:
    /// rustup, the target's std, then zig and cargo-zigbuild from PyPI
    /// (Windows: rustup-init.exe, and pip through the `py` launcher, as
    /// python.org's installer sets it up).
    fn zigbuild_lacks(&self, host: Host<'_>, triple: &str) -> Vec<String> {
        let windows = host.os == "windows";
        let mut commands = Vec::new();
        if self.rust_targets.is_none() {
            commands.push(if windows {
                "download and run rustup-init.exe from https://rustup.rs".to_string()
            } else {
                "curl --proto '=https' -sSf https://sh.rustup.rs | sh".to_string()
            });
        }
        if !self.has_target(triple) {
            commands.push(format!("rustup target add {triple}"));
        }
        let pip: Vec<&str> = [(!self.zig, "ziglang"), (!self.zigbuild, "cargo-zigbuild")]
            .into_iter()
            .filter_map(|(lacking, package)| lacking.then_some(package))
            .collect();
        if !pip.is_empty() {
            let pip_install = if windows {
                "py -m pip install"
            } else {
                "pip install"
            };
            commands.push(format!("{pip_install} {}", pip.join(" ")));
        }
        commands
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
    /// `cargo build`: a host that is not Linux building binaries to run
    /// here (the local target). They go into no image: the image step
    /// refuses them (`platform::check_binary`).
    Host,
    /// `cargo build --target <triple>`: this Linux host's own CPU, linked
    /// statically against glibc (`link`).
    Native { triple: String },
    /// `cargo zigbuild --target <triple>`: a static musl binary, zig as
    /// the C compiler and linker.
    Zigbuild { triple: String },
    /// `cross build --target <triple>`: a static musl binary, built in
    /// cross's container.
    Cross { triple: String },
    /// `cargo build --target <triple>` (a glibc triple, linked
    /// statically) inside `docker build`, in the build stage of the docker
    /// builder's multi-stage Dockerfile on the pinned Rust image: the
    /// binaries are made in the image, never on this host.
    Docker { triple: String },
}

/// Which toolchain is asked for (`--toolchain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The first of native, zigbuild and cross that can build the platform.
    Auto,
    Native,
    Zigbuild,
    Cross,
    Docker,
}

impl Toolchain {
    /// This host's own: native on Linux on a CPU images are built for,
    /// else `Host`.
    pub fn for_host() -> Self {
        choose(
            Host::here(),
            super::platform::host_platform(),
            &Installed::default(),
        )
        .unwrap_or(Self::Host)
    }

    /// The target triple it builds for (`--target`); none for `Host`.
    pub fn triple(&self) -> Option<&str> {
        match self {
            Self::Host => None,
            Self::Native { triple }
            | Self::Zigbuild { triple }
            | Self::Cross { triple }
            | Self::Docker { triple } => Some(triple),
        }
    }

    /// The program and its arguments for a build in `profile`: `build
    /// --profile P [--target T]` (`zigbuild` for zigbuild); the caller
    /// adds what is built.
    pub fn command(&self, cargo: &str, profile: &str) -> (String, Vec<String>) {
        let (program, subcommand) = match self {
            Self::Host | Self::Native { .. } | Self::Docker { .. } => (cargo, "build"),
            Self::Zigbuild { .. } => (cargo, "zigbuild"),
            Self::Cross { .. } => ("cross", "build"),
        };
        let mut args = vec![subcommand.to_string(), "--profile".into(), profile.into()];
        if let Some(triple) = self.triple() {
            args.extend(["--target".to_string(), triple.to_string()]);
        }
        (program.to_string(), args)
    }

    /// The target directory of its own, under `target`, where one is
    /// needed: zigbuild's and cross's flags and C compilers differ from
    /// the native build's, which sharing one directory would rebuild back
    /// and forth, and a glibc-versioned triple would overwrite the native
    /// build's binaries.
    pub fn own_target_dir(&self, target: &Path) -> Option<PathBuf> {
        match self {
            Self::Host | Self::Native { .. } | Self::Docker { .. } => None,
            Self::Zigbuild { .. } => Some(target.join("zigbuild")),
            Self::Cross { .. } => Some(target.join("cross")),
        }
    }

    /// Where cargo puts `profile`'s binaries under `target` (its own
    /// target directory, if any, already applied): `<triple>/<profile>`,
    /// the triple without zigbuild's glibc version.
    pub fn out_dir(&self, target: &Path, profile: &str) -> PathBuf {
        match self.triple() {
            None => target.join(profile),
            Some(t) => {
                let base = t.split_once(".").map_or(t, |(base, _)| base);
                target.join(base).join(profile)
            }
        }
    }

    /// Whether its binaries link glibc dynamically (zigbuild with
    /// `--glibc`: a triple with a glibc version): they run on a host or
    /// base with that glibc, not in an image on an empty base.
    pub fn links_glibc_dynamically(&self) -> bool {
        matches!(self, Self::Zigbuild { triple } if triple.contains('.'))
    }

    /// Whether cargo's JSON messages name the binaries where they are on
    /// this host (cross's cargo runs in a container, whose paths they
    /// name).
    pub fn reports_host_paths(&self) -> bool {
        !matches!(self, Self::Cross { .. } | Self::Docker { .. })
    }
}

/// `text` as a glibc version for zigbuild's triple suffix, for `--glibc`:
/// `2.N`, N at least 17 (Rust's std needs glibc 2.17 on Linux). Whether
/// zig knows a newer one is zig's to say when it links (its
/// `lib/libc/glibc/abilists`).
///
/// # Errors
/// Anything else, with an example of a version.
pub fn glibc_version(text: &str) -> Result<String> {
    let minor = text
        .strip_prefix("2.")
        .filter(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|m| m.parse::<u32>().ok());
    match minor {
        Some(m) if m >= 17 => Ok(text.to_string()),
        Some(_) => bail!(
            "--glibc {text:?}: Rust's standard library needs glibc 2.17 or newer; give 2.17 for \
             the oldest systems it runs on"
        ),
        None => bail!("--glibc {text:?}: give a glibc version such as 2.17 (2.N)"),
    }
}

/// The toolchain `kind` for `platform`: `Auto` is `choose`; the others
/// are taken as asked, zigbuild linking against `glibc` (a version, as
/// in `2.17`: a dynamically linked binary for a host or a base with that
/// glibc or newer) where given, else musl.
///
/// # Errors
/// A native build for another CPU or OS than the host's, `glibc` with
/// another toolchain than zigbuild, what `choose` refuses, a missing
/// tool.
pub fn pick(
    kind: Kind,
    host: Host<'_>,
    platform: Platform,
    glibc: Option<&str>,
    installed: &Installed,
) -> Result<Toolchain> {
    if glibc.is_some() && kind != Kind::Zigbuild {
        bail!("--glibc is zigbuild's (`--toolchain zigbuild --glibc 2.17`)");
    }
    let musl = musl_triple(platform);
    match kind {
        Kind::Auto => Ok(choose(host, platform, installed)?),
        Kind::Native => match choose(host, platform, &Installed::default()) {
            Ok(native @ Toolchain::Native { .. }) => Ok(native),
            _ => bail!(
                "--toolchain native builds only this host's own platform, and this host \
                 ({host}) is not {platform}: give --toolchain zigbuild or cross, or \
                 --toolchain auto"
            ),
        },
        Kind::Zigbuild => {
            let triple = match glibc {
                Some(v) => format!(
                    "{}-unknown-linux-gnu.{}",
                    platform.rust_arch(),
                    glibc_version(v)?
                ),
                None => musl,
            };
            let std_triple = triple.split_once(".").map_or(triple.as_str(), |(b, _)| b);
            let missing = installed.zigbuild_lacks(host, std_triple);
            if !missing.is_empty() {
                bail!(
                    "--toolchain zigbuild for {triple} needs what this host lacks: run {}",
                    missing
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                );
            }
            Ok(Toolchain::Zigbuild { triple })
        }
        Kind::Docker => Ok(Toolchain::Docker {
            triple: format!("{}-unknown-linux-gnu", platform.rust_arch()),
        }),
        Kind::Cross => {
            if !installed.cross {
                // The runner's own refusal of a missing cross is the same
                // cause: a dry run lists it once.
                return Err(Blocked::error(
                    Cause::MissingTool("cross".into()),
                    "--toolchain cross: `cross` is not on the PATH (`cargo install cross`)",
                ));
            }
            Ok(Toolchain::Cross { triple: musl })
        }
    }
}

/// What a build of `platform` with `kind` and `glibc` would use once this
/// host has what `pick` found missing (a dry run plans it): the native
/// build where `host` is Linux on the platform's CPU and nothing else was
/// asked, else the toolchain asked for, zigbuild for `Auto` (the first
/// remedy `Missing` names).
pub fn planned(kind: Kind, host: Host<'_>, platform: Platform, glibc: Option<&str>) -> Toolchain {
    let native = host.os == "linux" && Platform::of_rust_arch(host.arch) == Some(platform);
    let gnu = format!("{}-unknown-linux-gnu", platform.rust_arch());
    match (kind, glibc) {
        (Kind::Zigbuild | Kind::Auto, Some(v)) => Toolchain::Zigbuild {
            triple: format!("{gnu}.{v}"),
        },
        (Kind::Native, _) => Toolchain::Native { triple: gnu },
        (Kind::Auto, None) if native => Toolchain::Native { triple: gnu },
        (Kind::Auto | Kind::Zigbuild, None) => Toolchain::Zigbuild {
            triple: musl_triple(platform),
        },
        (Kind::Cross, _) => Toolchain::Cross {
            triple: musl_triple(platform),
        },
        (Kind::Docker, _) => Toolchain::Docker { triple: gnu },
    }
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Host => write!(f, "cargo build (this host's own binaries)"),
            Self::Native { triple } => write!(f, "cargo build --target {triple} (native, static)"),
            Self::Zigbuild { triple } => write!(f, "cargo zigbuild --target {triple}"),
            Self::Cross { triple } => write!(f, "cross build --target {triple}"),
            Self::Docker { triple } => write!(
                f,
                "cargo build --target {triple} inside docker build (the docker builder)"
            ),
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
    /// What to do: the zigbuild path's commands, or cross, or (for images) the
    /// docker builder.
    pub fn remedy(&self) -> String {
        format!(
            "run {}; or install cross (`cargo install cross`, with a container engine); or, for \
             images, give --toolchain docker (it compiles in the pinned Rust image, inside \
             `docker build`)",
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
    let zigbuild = installed.zigbuild_lacks(host, &triple);
    Err(Missing {
        platform,
        host: host.to_string(),
        zigbuild,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn host(os: &'static str, arch: &'static str) -> Host<'static> {
        Host { os, arch }
    }
    const LINUX_X86: Host<'static> = host("linux", "x86_64");
    const LINUX_ARM: Host<'static> = host("linux", "aarch64");
    const MAC_ARM: Host<'static> = host("macos", "aarch64");
    const MAC_X86: Host<'static> = host("macos", "x86_64");
    const WINDOWS: Host<'static> = host("windows", "x86_64");

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
        // Windows: rustup's installer and the `py` launcher's pip.
        let on_windows = |tools: &Installed| {
            choose(WINDOWS, Platform::LINUX_AMD64, tools)
                .err()
                .map(|m| m.zigbuild)
                .unwrap_or_default()
        };
        assert_eq!(
            on_windows(&Installed {
                rust_targets: None,
                zigbuild: false,
                zig: false,
                cross: false,
            }),
            [
                "download and run rustup-init.exe from https://rustup.rs",
                "rustup target add x86_64-unknown-linux-musl",
                "py -m pip install ziglang cargo-zigbuild"
            ]
        );

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
             cargo-zigbuild`; or install cross (`cargo install cross`, with a container engine); \
             or, for images, give --toolchain docker (it compiles in the pinned Rust image, \
             inside `docker build`)"
        );
    }

    #[test]
    fn a_dry_run_plans_the_toolchain_the_remedy_installs() {
        let zig = |t: &str| Toolchain::Zigbuild { triple: t.into() };
        let cases = [
            // What `Missing` names first: zigbuild.
            (
                Kind::Auto,
                MAC_ARM,
                Platform::LINUX_ARM64,
                None,
                zig("aarch64-unknown-linux-musl"),
            ),
            (
                Kind::Auto,
                LINUX_X86,
                Platform::LINUX_ARM64,
                None,
                zig("aarch64-unknown-linux-musl"),
            ),
            (
                Kind::Auto,
                LINUX_ARM,
                Platform::LINUX_ARM64,
                None,
                Toolchain::Native {
                    triple: "aarch64-unknown-linux-gnu".into(),
                },
            ),
            (
                Kind::Cross,
                LINUX_X86,
                Platform::LINUX_ARM64,
                None,
                Toolchain::Cross {
                    triple: "aarch64-unknown-linux-musl".into(),
                },
            ),
            (
                Kind::Zigbuild,
                MAC_ARM,
                Platform::LINUX_AMD64,
                Some("2.17"),
                zig("x86_64-unknown-linux-gnu.2.17"),
            ),
        ];
        for (kind, host, platform, glibc, expected) in cases {
            assert_eq!(
                planned(kind, host, platform, glibc),
                expected,
                "{kind:?} on {host} for {platform}"
            );
        }
    }

    #[test]
    fn glibc_versions_are_2_n_from_2_17() {
        assert_eq!(glibc_version("2.17").ok().as_deref(), Some("2.17"));
        assert_eq!(glibc_version("2.31").ok().as_deref(), Some("2.31"));
        for refused in ["", "2", "2.", "2.+20", "3.1", "2.17.1", "x", "2.16"] {
            assert!(glibc_version(refused).is_err(), "{refused:?} taken");
        }
        let old = glibc_version("2.12").expect_err("2.12 taken");
        assert!(old.to_string().contains("2.17 or newer"), "{old}");
    }

    #[test]
    fn a_toolchain_asked_for_is_taken_or_refused_saying_why() {
        let all = installed(
            &["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-musl"],
            true,
            true,
            true,
        );
        let pick = |kind, host, platform, glibc| {
            super::pick(kind, host, platform, glibc, &all).map_err(|e| e.to_string())
        };
        assert_eq!(
            pick(
                Kind::Zigbuild,
                LINUX_X86,
                Platform::LINUX_AMD64,
                Some("2.17")
            ),
            Ok(Toolchain::Zigbuild {
                triple: "x86_64-unknown-linux-gnu.2.17".into()
            })
        );
        assert_eq!(
            pick(Kind::Zigbuild, LINUX_X86, Platform::LINUX_ARM64, None),
            Ok(Toolchain::Zigbuild {
                triple: "aarch64-unknown-linux-musl".into()
            })
        );
        assert_eq!(
            pick(Kind::Cross, MAC_ARM, Platform::LINUX_AMD64, None),
            Ok(Toolchain::Cross {
                triple: "x86_64-unknown-linux-musl".into()
            })
        );
        let refused = |r: Result<Toolchain, String>, says: &str| {
            let err = r.err().unwrap_or_default();
            assert!(err.contains(says), "{says:?} not in {err:?}");
        };
        refused(
            pick(Kind::Native, MAC_ARM, Platform::LINUX_ARM64, None),
            "this host (macos/aarch64) is not linux/arm64",
        );
        refused(
            pick(Kind::Native, LINUX_X86, Platform::LINUX_ARM64, None),
            "--toolchain native builds only this host's own platform",
        );
        refused(
            pick(Kind::Auto, LINUX_X86, Platform::LINUX_AMD64, Some("2.17")),
            "--glibc is zigbuild's",
        );
        for bad in ["", "two", "2.x", "2..17"] {
            refused(
                pick(Kind::Zigbuild, LINUX_X86, Platform::LINUX_AMD64, Some(bad)),
                "give a glibc version such as 2.17",
            );
        }
        // What zigbuild lacks, named as the commands that install it.
        let bare = installed(&[], false, false, false);
        let err = super::pick(Kind::Zigbuild, MAC_ARM, Platform::LINUX_AMD64, None, &bare)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "--toolchain zigbuild for x86_64-unknown-linux-musl needs what this host lacks: run \
             `rustup target add x86_64-unknown-linux-musl` and `pip install ziglang cargo-zigbuild`"
        );
        let err = super::pick(Kind::Cross, MAC_ARM, Platform::LINUX_AMD64, None, &bare)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("`cargo install cross`"), "{err}");
    }

    #[test]
    fn each_toolchain_says_its_command_and_where_its_binaries_go() {
        let target = Path::new("/t");
        let native = Toolchain::Native {
            triple: "x86_64-unknown-linux-gnu".into(),
        };
        assert_eq!(
            native.command("cargo", "dist"),
            (
                "cargo".into(),
                [
                    "build",
                    "--profile",
                    "dist",
                    "--target",
                    "x86_64-unknown-linux-gnu"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        assert_eq!(native.own_target_dir(target), None);
        assert_eq!(
            native.out_dir(target, "release"),
            Path::new("/t/x86_64-unknown-linux-gnu/release")
        );
        let zig = Toolchain::Zigbuild {
            triple: "x86_64-unknown-linux-gnu.2.17".into(),
        };
        assert_eq!(zig.command("cargo", "release").1[0], "zigbuild");
        let own = zig.own_target_dir(target).unwrap_or_default();
        assert_eq!(own, Path::new("/t/zigbuild"));
        // cargo's directory is the triple without the glibc version.
        assert_eq!(
            zig.out_dir(&own, "dist"),
            Path::new("/t/zigbuild/x86_64-unknown-linux-gnu/dist")
        );
        let cross = Toolchain::Cross {
            triple: "aarch64-unknown-linux-musl".into(),
        };
        assert_eq!(cross.command("cargo", "release").0, "cross");
        assert_eq!(
            Toolchain::Host.command("cargo", "release").1,
            ["build", "--profile", "release"]
        );
        assert!(!cross.reports_host_paths() && zig.reports_host_paths());
        assert_eq!(Toolchain::Host.triple(), None);
        assert_eq!(
            Toolchain::Host.out_dir(target, "release"),
            Path::new("/t/release")
        );
    }
}
