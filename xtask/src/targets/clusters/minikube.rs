//! minikube: the tutorial's `minikube start --memory 4096`; images by
//! `minikube image load`; services reached through `minikube service
//! --url`, or through the engine's port-forward where that command would
//! block (the Docker or Podman driver outside Linux, under WSL, or on a
//! remote, rootless or Docker Desktop engine: `url_source`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xshell::cmd;

use super::cluster::Cluster;
use crate::build::platform::Platform;
use crate::build::toolchain::Host;
use crate::ground::context::Ctx;
use crate::ground::names;
use crate::ground::runner::{Probe, shown};
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::publish::minikube::Minikube as Load;
use crate::publish::publisher::Publisher;
use crate::targets::engine::Engine;

/// `[minikube]`: the profile `cluster up` starts, its memory (MB) and CPUs.
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub profile: String,
    pub memory_mb: u32,
    pub cpus: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            profile: "minikube".into(),
            memory_mb: 4096,
            cpus: 2,
        }
    }
}

impl Settings {
    /// # Errors
    /// A profile a shell or minikube's container would refuse.
    fn check(self) -> Result<Self> {
        names::container_name(&self.profile)
            .map_err(|why| anyhow::anyhow!("minikube.profile = {:?} {why}", self.profile))?;
        Ok(self)
    }
}

/// `--target minikube`.
pub const KIND: super::cluster::ClusterKind = super::cluster::ClusterKind {
    name: TargetName::named("minikube"),
    about: "A local minikube cluster",
    loads_images: true,
    tools: &[crate::ground::tools::Tool {
        name: "minikube",
        version_args: &["version", "--short"],
        version_exits_0: true,
        also_for: "",
        debian: "install the minikube .deb from the minikube releases page",
        macos: "brew install minikube",
    }],
    make: |config| {
        Ok(Box::new(Minikube {
            settings: super::cluster::table::<Settings>(config, KIND.name)?.check()?,
            namespace: config.kubernetes.namespace.clone(),
            ingress_local_port: config.seldon.local_port,
        }))
    },
};

/// The minikube profile `[minikube] profile`, its services in `namespace`.
pub struct Minikube {
    pub settings: Settings,
    pub namespace: String,
    /// `[seldon] local_port`: where this machine reaches the ingress.
    pub ingress_local_port: u16,
}

/// How a service's URL is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlSource {
    /// `minikube service --url`: the node's address is reachable from
    /// the host.
    Service,
    /// The engine's port-forward to the service, as on kind: where the
    /// node container (Docker or Podman driver) has no address this host
    /// can reach, `minikube service --url` prints the URL and then blocks
    /// to hold a tunnel open (minikube issues #9016, #14039, #15733).
    PortForward,
}

/// What on a Linux host hides minikube's node container from it, as
/// minikube's own `driver.NeedsPortForward` decides
/// (pkg/minikube/driver/driver.go).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinuxHost {
    /// Running under WSL (`WSL_DISTRO_NAME`, `WSLPATH` or `WSLENV` set).
    pub wsl: bool,
    /// The engine is another machine's: `DOCKER_HOST` (`CONTAINER_HOST`
    /// for podman) is a URL with a host (`tcp://…`, `ssh://…`).
    pub remote_engine: bool,
    /// The engine runs rootless (its containers' addresses are in its
    /// own network namespace).
    pub rootless: bool,
    /// The engine is Docker Desktop for Linux (its own VM).
    pub desktop: bool,
}

impl LinuxHost {
    /// Why the node is out of reach, if it is: `under WSL`.
    fn hidden_by(self) -> Option<&'static str> {
        [
            (self.wsl, "under WSL"),
            (self.remote_engine, "on a remote engine (DOCKER_HOST)"),
            (self.rootless, "on a rootless engine"),
            (self.desktop, "on Docker Desktop"),
        ]
        .into_iter()
        .find_map(|(hidden, why)| hidden.then_some(why))
    }

    /// This host, as far as `driver` (minikube's, `docker` or `podman`)
    /// matters: environment variables, and the engine's `info`.
    fn detect(cx: &Ctx, driver: &str) -> Self {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let host_var = if driver == "podman" {
            "CONTAINER_HOST"
        } else {
            "DOCKER_HOST"
        };
        let info = |format: &str| {
            cx.runner
                .probe(
                    cmd!(cx.sh, "{driver} info --format {format}"),
                    "asking the engine whether it runs rootless",
                    Duration::from_secs(15),
                )
                .ok()
                .filter(|p| p.success)
                .map(|p| p.stdout)
                .unwrap_or_default()
        };
        let (rootless, desktop) = if driver == "podman" {
            (info("{{.Host.Security.Rootless}}").trim() == "true", false)
        } else {
            let said = info("{{.SecurityOptions}} {{.OperatingSystem}}");
            (said.contains("rootless"), said.contains("Docker Desktop"))
        };
        Self {
            wsl: ["WSL_DISTRO_NAME", "WSLPATH", "WSLENV"]
                .into_iter()
                .any(set),
            remote_engine: std::env::var(host_var).is_ok_and(|v| names_a_host(&v)),
            rootless,
            desktop,
        }
    }
}

/// Whether an engine URL (`DOCKER_HOST`) names a host: `tcp://10.0.0.5:2376`
/// and `ssh://me@box` do; `unix:///var/run/docker.sock` does not.
fn names_a_host(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'))
}

impl UrlSource {
    /// What `status` and the deploy say about it.
    pub fn about(self, host: Host<'_>, driver: Option<&str>, linux: LinuxHost) -> String {
        match self {
            Self::Service => "service URLs from `minikube service --url`".into(),
            Self::PortForward => format!(
                "service URLs from the engine's port-forwards (the {} driver {} would hold \
                 `minikube service --url` open for its tunnel)",
                driver.unwrap_or("docker"),
                linux
                    .hidden_by()
                    .filter(|_| host.os == "linux")
                    .map_or_else(|| format!("on {}", host.os), str::to_string),
            ),
        }
    }
}

/// How `host` reaches services on a minikube whose driver is `driver`
/// (`None`: unknown, as under --dry-run); `linux`: what hides the node
/// on a Linux host.
pub fn url_source(host: Host<'_>, driver: Option<&str>, linux: LinuxHost) -> UrlSource {
    let containerised = matches!(driver, Some("docker" | "podman"));
    let hidden = host.os != "linux" || linux.hidden_by().is_some();
    if containerised && hidden {
        UrlSource::PortForward
    } else {
        UrlSource::Service
    }
}

/// The driver of `profile`, and on a Linux host with a container driver
/// what may hide its node.
fn reach(cx: &Ctx, profile: &str, host: Host<'_>) -> (Option<String>, LinuxHost) {
    let driver = Minikube::driver(cx, profile);
    let linux = match driver.as_deref() {
        Some(d @ ("docker" | "podman")) if host.os == "linux" => LinuxHost::detect(cx, d),
        _ => LinuxHost::default(),
    };
    (driver, linux)
}

impl Minikube {
    /// The driver of `profile` (`minikube profile list --output json`:
    /// `valid[].Config.Driver`); `None` when minikube does not say.
    fn driver(cx: &Ctx, profile: &str) -> Option<String> {
        let probe = cx
            .runner
            .probe(
                cmd!(cx.sh, "minikube profile list --output json"),
                "finding the minikube driver",
                Duration::from_secs(30),
            )
            .ok()
            .filter(|p| p.success)?;
        let list: serde_json::Value = serde_json::from_str(&probe.stdout).ok()?;
        list["valid"]
            .as_array()?
            .iter()
            .find(|p| p["Name"] == profile)?["Config"]["Driver"]
            .as_str()
            .map(str::to_string)
    }
}

impl Cluster for Minikube {
    fn name(&self) -> TargetName {
        KIND.name
    }

    fn context(&self, _cx: &Ctx) -> Result<String> {
        Ok(self.settings.profile.clone())
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "minikube", "kubectl"]
    }

    fn up(&self, cx: &Ctx) -> Result<()> {
        let m = &self.settings;
        let (profile, memory, cpus) = (&m.profile, m.memory_mb.to_string(), m.cpus.to_string());
        cx.runner.run(
            cmd!(
                cx.sh,
                "minikube start --profile {profile} --memory {memory} --cpus {cpus}"
            ),
            "starting minikube",
        )?;
        Ok(())
    }

    fn down(&self, cx: &Ctx, _confirmed: bool) -> Result<()> {
        let profile = &self.settings.profile;
        cx.runner.run(
            cmd!(cx.sh, "minikube delete --profile {profile}"),
            "deleting minikube",
        )?;
        Ok(())
    }

    /// `minikube status`, then how services are reached on it.
    fn status(&self, cx: &Ctx) -> Result<Probe> {
        let profile = &self.settings.profile;
        let mut probe = cx.runner.probe(
            cmd!(cx.sh, "minikube status --profile {profile}"),
            "cluster status",
            Duration::from_secs(60),
        )?;
        if probe.success
            && let Some(line) = self.reached_by(cx)
        {
            probe.stdout.push_str(&format!("{line}\n"));
        }
        Ok(probe)
    }

    /// The driver, and where service URLs come from with it (`url_source`).
    fn reached_by(&self, cx: &Ctx) -> Option<String> {
        let host = Host::here();
        let (driver, linux) = reach(cx, &self.settings.profile, host);
        Some(format!(
            "minikube driver: {}; {}",
            driver.as_deref().unwrap_or("unknown"),
            url_source(host, driver.as_deref(), linux).about(host, driver.as_deref(), linux)
        ))
    }

    /// With the Docker or Podman driver the node is a container of the
    /// local engine: its platform. A VM driver runs the host's CPU.
    fn planned_platform(&self, cx: &Ctx) -> Result<Option<Platform>> {
        let profile = &self.settings.profile;
        match Self::driver(cx, profile).as_deref() {
            Some("docker" | "podman") => crate::targets::docker::engine_platform(cx),
            _ => Ok(None),
        }
    }

    fn publisher(&self, _cx: &Ctx) -> Box<dyn Publisher> {
        Box::new(Load {
            profile: self.settings.profile.clone(),
        })
    }

    fn service_url(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &Path,
        spec: &ServiceSpec,
    ) -> Result<String> {
        let (profile, namespace, name) = (&self.settings.profile, &self.namespace, &spec.name);
        let host = Host::here();
        let (driver, linux) = reach(cx, profile, host);
        if url_source(host, driver.as_deref(), linux) == UrlSource::PortForward {
            cx.runner.step(format!(
                "{}: {}",
                spec.name,
                UrlSource::PortForward.about(host, driver.as_deref(), linux)
            ));
            return engine.forward(cx, state, name, namespace, name, None, spec.settings.port);
        }
        let cmd = || {
            cmd!(
                cx.sh,
                "minikube service --url --profile {profile} --namespace {namespace} {name}"
            )
        };
        let found = cx.runner.unless_dry_run(|| {
            let p = cx
                .runner
                .probe(cmd(), "finding the service URL", Duration::from_secs(60))
                .context(
                    "minikube printed no URL and did not return: it holds a tunnel open where \
                     this host cannot reach the node (the Docker or Podman driver outside \
                     Linux, under WSL, on a remote or rootless engine); `cargo xtask status \
                     --target minikube` says which URL source was chosen, and `kubectl \
                     port-forward` reaches the service meanwhile",
                )?;
            let url = p
                .stdout
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("http"));
            match url {
                Some(u) if p.success => Ok(u.to_string()),
                _ => bail!(
                    "`{}` gave no URL: {}",
                    shown(&cmd().into()),
                    p.stderr.trim()
                ),
            }
        })?;
        match found {
            Some(url) => Ok(url),
            None => {
                // The plan shows the command that would find it.
                cx.runner.run(cmd(), "finding the service URL")?;
                Ok(format!("http://<minikube ip>:<node port of {name}>"))
            }
        }
    }

    fn ingress_local_port(&self) -> Option<u16> {
        Some(self.ingress_local_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_settings_spell_out_the_defaults() -> anyhow::Result<()> {
        super::super::cluster::spelled_out::<Settings>(KIND.name)
    }

    #[test]
    fn the_docker_driver_outside_linux_is_reached_by_port_forward() {
        let host = |os| Host {
            os,
            arch: "aarch64",
        };
        let plain = LinuxHost::default();
        for os in ["macos", "windows"] {
            for driver in ["docker", "podman"] {
                assert_eq!(
                    url_source(host(os), Some(driver), plain),
                    UrlSource::PortForward,
                    "{os} {driver}"
                );
            }
            // A VM driver gives the host a route to the node.
            for driver in ["qemu2", "hyperkit", "vfkit", "hyperv"] {
                assert_eq!(
                    url_source(host(os), Some(driver), plain),
                    UrlSource::Service
                );
            }
        }
        // On Linux the Docker driver's node address is reachable.
        for driver in [Some("docker"), Some("kvm2"), None] {
            assert_eq!(url_source(host("linux"), driver, plain), UrlSource::Service);
        }
        assert!(
            UrlSource::PortForward
                .about(host("macos"), Some("docker"), plain)
                .contains("the docker driver on macos would hold `minikube service --url` open")
        );
    }

    #[test]
    fn on_linux_wsl_a_remote_or_rootless_engine_and_docker_desktop_hide_the_node() {
        let linux = Host {
            os: "linux",
            arch: "x86_64",
        };
        let cases = [
            (
                LinuxHost {
                    wsl: true,
                    ..LinuxHost::default()
                },
                "under WSL",
            ),
            (
                LinuxHost {
                    remote_engine: true,
                    ..LinuxHost::default()
                },
                "on a remote engine (DOCKER_HOST)",
            ),
            (
                LinuxHost {
                    rootless: true,
                    ..LinuxHost::default()
                },
                "on a rootless engine",
            ),
            (
                LinuxHost {
                    desktop: true,
                    ..LinuxHost::default()
                },
                "on Docker Desktop",
            ),
        ];
        for (hidden, why) in cases {
            for driver in ["docker", "podman"] {
                let source = url_source(linux, Some(driver), hidden);
                assert_eq!(source, UrlSource::PortForward, "{why} {driver}");
                assert!(
                    source
                        .about(linux, Some(driver), hidden)
                        .contains(&format!("the {driver} driver {why} would hold")),
                    "{why}"
                );
            }
            // A VM driver is reached at its own address whatever the engine.
            assert_eq!(url_source(linux, Some("kvm2"), hidden), UrlSource::Service);
        }
        assert!(names_a_host("tcp://10.0.0.5:2376"));
        assert!(names_a_host("ssh://me@build-box"));
        assert!(!names_a_host("unix:///var/run/docker.sock"));
        assert!(!names_a_host("/var/run/docker.sock"));
    }
}
