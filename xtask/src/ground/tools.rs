//! The external tools the xtask drives: how to ask each its version and how
//! to install it. (Which targets need which tool, each target says; a
//! cluster kind's own tool, such as `kind`, is in its file.)

pub struct Tool {
    pub name: &'static str,
    /// Arguments that make the tool print its version.
    pub version_args: &'static [&'static str],
    /// Whether it then exits 0 (wrk 4.1 prints its version and exits 1).
    pub version_exits_0: bool,
    /// What uses it besides the targets that need it, for the doctor's table.
    pub also_for: &'static str,
    pub debian: &'static str,
    pub macos: &'static str,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "cargo",
        version_args: &["--version"],
        version_exits_0: true,
        also_for: "building the services",
        debian: "apt-get install rustup && rustup toolchain install 1.95.0",
        macos: "brew install rustup && rustup toolchain install 1.95.0",
    },
    Tool {
        name: "docker",
        version_args: &["--version"],
        version_exits_0: true,
        also_for: "image build --builder docker, image load",
        debian: "apt-get install docker.io (or podman with its Docker-compatible socket)",
        macos: "brew install --cask docker (or brew install podman)",
    },
    Tool {
        name: "podman",
        version_args: &["--version"],
        version_exits_0: true,
        also_for: "a daemonless Docker replacement (docker target)",
        debian: "apt-get install podman",
        macos: "brew install podman",
    },
    Tool {
        name: "kubectl",
        version_args: &["version", "--client"],
        version_exits_0: true,
        also_for: "context list/use, kustomize",
        debian: "apt-get install kubectl (from the Kubernetes apt repository)",
        macos: "brew install kubectl",
    },
    Tool {
        name: "helm",
        version_args: &["version", "--short"],
        version_exits_0: true,
        also_for: "installing Seldon Core",
        debian: "apt-get install helm (from the Helm apt repository)",
        macos: "brew install helm",
    },
    Tool {
        name: "cross",
        version_args: &["--version"],
        version_exits_0: true,
        also_for: "another platform's binaries, in a container (--toolchain cross)",
        debian: "cargo install cross (it needs a container engine)",
        macos: "cargo install cross (it needs a container engine)",
    },
    Tool {
        name: "skopeo",
        version_args: &["--version"],
        version_exits_0: true,
        also_for: "inspecting images independently of our code",
        debian: "apt-get install skopeo",
        macos: "brew install skopeo",
    },
    Tool {
        name: "wrk",
        version_args: &["--version"],
        version_exits_0: false,
        also_for: "cargo xtask bench",
        debian: "apt-get install wrk",
        macos: "brew install wrk",
    },
];

/// How to install `t`, for errors and the doctor's table.
pub fn hint(t: &Tool) -> String {
    format!("Debian/Ubuntu: {}; macOS: {}", t.debian, t.macos)
}

/// How to install `name`, one of `known` or not.
pub fn install_hint(known: &[&Tool], name: &str) -> String {
    match known.iter().find(|t| t.name == name) {
        Some(t) => hint(t),
        None => format!("install `{name}` with your package manager"),
    }
}

/// The container engine's CLI: `docker` when installed, else `podman` (whose
/// CLI takes the same commands), else `docker` so that errors name it.
pub fn engine_cli() -> &'static str {
    if which::which("docker").is_err() && which::which("podman").is_ok() {
        "podman"
    } else {
        "docker"
    }
}
