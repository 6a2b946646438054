//! The external tools the xtask drives: how to ask each its version and how
//! to install it. (Which targets need which tool, each target says.)

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
        name: "minikube",
        version_args: &["version", "--short"],
        version_exits_0: true,
        also_for: "",
        debian: "install the minikube .deb from the minikube releases page",
        macos: "brew install minikube",
    },
    Tool {
        name: "kind",
        version_args: &["version"],
        version_exits_0: true,
        also_for: "",
        debian: "go install sigs.k8s.io/kind@latest (or the release binary)",
        macos: "brew install kind",
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
        name: "gcloud",
        version_args: &["version"],
        version_exits_0: true,
        also_for: "",
        debian: "apt-get install google-cloud-cli (from the Google Cloud apt repository)",
        macos: "brew install --cask google-cloud-sdk",
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

pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// The install hint for `name`, for errors and the doctor's table.
pub fn install_hint(name: &str) -> String {
    match find(name) {
        Some(t) => format!("Debian/Ubuntu: {}; macOS: {}", t.debian, t.macos),
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
