//! minikube: the tutorial's `minikube start --memory 4096`; images by
//! `minikube image load`; services reached through `minikube service
//! --url`, or through the engine's port-forward where that command would
//! block (the Docker driver outside Linux: `url_source`).

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use xshell::cmd;

use super::cluster::Cluster;
use crate::build::toolchain::Host;
use crate::ground::context::Ctx;
use crate::ground::runner::{Probe, shown};
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::publish::minikube::Minikube as Load;
use crate::publish::publisher::Publisher;
use crate::targets::engine::{self, Engine};

pub struct Minikube;

/// How a service's URL is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlSource {
    /// `minikube service --url`: the node's address is reachable from
    /// the host.
    Service,
    /// The engine's port-forward to the service, as on kind: with the
    /// Docker (or Podman) driver on macOS and Windows the node sits
    /// behind the engine's VM, and `minikube service --url` prints the URL
    /// and then blocks to hold a tunnel open (minikube issues #9016,
    /// #14039, #15733).
    PortForward,
}

impl UrlSource {
    /// What `status` and the deploy say about it.
    pub fn about(self, host: Host<'_>, driver: Option<&str>) -> String {
        match self {
            Self::Service => "service URLs from `minikube service --url`".into(),
            Self::PortForward => format!(
                "service URLs from the engine's port-forwards (the {} driver on {} would hold \
                 `minikube service --url` open for its tunnel)",
                driver.unwrap_or("docker"),
                host.os
            ),
        }
    }
}

/// How `host` reaches services on a minikube whose driver is `driver`
/// (`None`: unknown, as under --dry-run).
pub fn url_source(host: Host<'_>, driver: Option<&str>) -> UrlSource {
    let containerised = matches!(driver, Some("docker" | "podman"));
    if containerised && host.os != "linux" {
        UrlSource::PortForward
    } else {
        UrlSource::Service
    }
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
        TargetName::Minikube
    }

    fn context(&self, cx: &Ctx) -> Result<String> {
        let config = &cx.config;
        Ok(config.minikube.profile.clone())
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "minikube", "kubectl"]
    }

    fn up(&self, cx: &Ctx) -> Result<()> {
        let m = &cx.config.minikube;
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
        let profile = &cx.config.minikube.profile;
        cx.runner.run(
            cmd!(cx.sh, "minikube delete --profile {profile}"),
            "deleting minikube",
        )?;
        Ok(())
    }

    /// `minikube status`, then how services are reached on it.
    fn status(&self, cx: &Ctx) -> Result<Probe> {
        let profile = &cx.config.minikube.profile;
        let mut probe = cx.runner.probe(
            cmd!(cx.sh, "minikube status --profile {profile}"),
            "cluster status",
            Duration::from_secs(60),
        )?;
        if probe.success {
            let driver = Self::driver(cx, profile);
            let host = Host::here();
            let source = url_source(host, driver.as_deref());
            probe.stdout.push_str(&format!(
                "driver: {}; {}\n",
                driver.as_deref().unwrap_or("unknown"),
                source.about(host, driver.as_deref())
            ));
        }
        Ok(probe)
    }

    fn publisher(&self, _cx: &Ctx) -> Box<dyn Publisher> {
        Box::new(Load)
    }

    fn service_url(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &Path,
        spec: &ServiceSpec,
    ) -> Result<String> {
        let (profile, namespace, name) = (
            &cx.config.minikube.profile,
            &cx.config.kubernetes.namespace,
            &spec.name,
        );
        let driver = Self::driver(cx, profile);
        let host = Host::here();
        if url_source(host, driver.as_deref()) == UrlSource::PortForward {
            cx.runner.step(format!(
                "{}: {}",
                spec.name,
                UrlSource::PortForward.about(host, driver.as_deref())
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
                .probe(cmd(), "finding the service URL", Duration::from_secs(60))?;
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

    fn ingress(
        &self,
        cx: &Ctx,
        engine: &Engine,
        state: &Path,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<(String, u16)> {
        engine::forward_ingress(cx, engine, state, namespace, service, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docker_driver_outside_linux_is_reached_by_port_forward() {
        let host = |os| Host {
            os,
            arch: "aarch64",
        };
        for os in ["macos", "windows"] {
            for driver in ["docker", "podman"] {
                assert_eq!(
                    url_source(host(os), Some(driver)),
                    UrlSource::PortForward,
                    "{os} {driver}"
                );
            }
            // A VM driver gives the host a route to the node.
            for driver in ["qemu2", "hyperkit", "vfkit", "hyperv"] {
                assert_eq!(url_source(host(os), Some(driver)), UrlSource::Service);
            }
        }
        // On Linux the Docker driver's node address is reachable.
        for driver in [Some("docker"), Some("kvm2"), None] {
            assert_eq!(url_source(host("linux"), driver), UrlSource::Service);
        }
        assert!(
            UrlSource::PortForward
                .about(host("macos"), Some("docker"))
                .contains("the docker driver on macos would hold `minikube service --url` open")
        );
    }
}
