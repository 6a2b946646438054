//! minikube: the tutorial's `minikube start --memory 4096`; images by
//! `minikube image load`; services reached through `minikube service --url`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use xshell::cmd;

use super::cluster::Cluster;
use crate::ground::context::Ctx;
use crate::ground::runner::{Probe, shown};
use crate::ground::services::ServiceSpec;
use crate::ground::settings::TargetName;
use crate::publish::minikube::Minikube as Load;
use crate::publish::publisher::Publisher;
use crate::targets::engine::{self, Engine};

pub struct Minikube;

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

    fn status(&self, cx: &Ctx) -> Result<Probe> {
        let profile = &cx.config.minikube.profile;
        cx.runner.probe(
            cmd!(cx.sh, "minikube status --profile {profile}"),
            "cluster status",
            Duration::from_secs(60),
        )
    }

    fn publisher(&self, _cx: &Ctx) -> Box<dyn Publisher> {
        Box::new(Load)
    }

    fn service_url(
        &self,
        cx: &Ctx,
        _engine: &Engine,
        _state: &Path,
        spec: &ServiceSpec,
    ) -> Result<String> {
        let (profile, namespace, name) = (
            &cx.config.minikube.profile,
            &cx.config.kubernetes.namespace,
            &spec.name,
        );
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
