//! The Kubernetes target, over any [`Cluster`]: the kube-context guard
//! first, images delivered the way the cluster takes them, the kustomize
//! overlay rendered by kubectl and applied by the kube engine (server-side
//! apply, rollout wait with explanations), then a URL per service.

use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use xshell::cmd;

use crate::build::Built;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::conventions::MANAGED_BY;
use crate::ground::kubecontext;

use crate::ground::services::ServiceSpec;
use crate::ground::settings;
use crate::image::{self, Builder};
use crate::targets::clusters::cluster::Cluster;
use crate::targets::engine::{self, Engine};
use crate::targets::target::{Delivered, Delivery, Session, StatusRow, Target};

/// How long reading what is deployed may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(120);

/// A Kubernetes target: its cluster, `[kubernetes]`, `[seldon]`, and how
/// its images are made (with every service of the settings).
pub struct Kube {
    cluster: Box<dyn Cluster>,
    kubernetes: settings::Kubernetes,
    seldon: settings::Seldon,
    setup: image::Setup,
    /// Every service's name, in deploy order.
    services: Vec<String>,
}

impl Kube {
    /// The target on `cluster`, with its settings.
    pub fn new(
        cluster: Box<dyn Cluster>,
        kubernetes: settings::Kubernetes,
        seldon: settings::Seldon,
        setup: image::Setup,
    ) -> Self {
        Self {
            cluster,
            kubernetes,
            seldon,
            services: setup.all.iter().map(|s| s.name.clone()).collect(),
            setup,
        }
    }

    /// Every service of the settings, in deploy order.
    pub fn all_services(&self) -> &[ServiceSpec] {
        &self.setup.all
    }

    /// The generated manifests this target applies: `[kubernetes]
    /// manifests_dir`, in its namespaces.
    pub fn manifests(&self) -> crate::manifests::Manifests {
        crate::manifests::Manifests {
            dir: self.kubernetes.manifests_dir.clone(),
            namespace: self.kubernetes.namespace.clone(),
            seldon_namespace: self.seldon.namespace.clone(),
        }
    }

    pub fn cluster(&self) -> &dyn Cluster {
        self.cluster.as_ref()
    }

    /// `[seldon]`: how Seldon Core is installed here and where its
    /// resources go.
    pub fn seldon(&self) -> &settings::Seldon {
        &self.seldon
    }

    /// `[kubernetes] manifests_dir`: the generated and hand-written
    /// manifests.
    pub fn manifests_dir(&self) -> &std::path::Path {
        &self.kubernetes.manifests_dir
    }

    /// Where rendered manifests, port-forward pids and logs go.
    pub fn state_dir(&self) -> PathBuf {
        self.kubernetes.state_dir.join(self.cluster.name().as_str())
    }

    /// The session's engine (every Kubernetes session has one).
    pub fn engine<'a>(&self, session: &'a Session) -> Result<&'a Engine> {
        session
            .kube
            .as_ref()
            .context("this session was not opened on a Kubernetes target")
    }

    /// Renders the kustomization in `source` and applies it with the
    /// delivered images, waiting for every rollout. `only` limits it to
    /// those services.
    pub fn apply_dir(
        &self,
        cx: &Ctx,
        session: &Session,
        source: &Path,
        namespace: &str,
        only: &[&str],
        images: &[Delivery],
    ) -> Result<()> {
        cx.runner.step(format!("render {}", source.display()));
        let rendered = cx.runner.run(
            cmd!(cx.sh, "kubectl kustomize {source}"),
            "rendering the kustomize overlay",
        )?;
        let dir = self.state_dir();
        let name = source
            .file_name()
            .map_or("manifest".into(), |n| n.to_string_lossy());
        let manifest = dir.join(format!("{name}.yaml"));
        cx.runner.unless_dry_run(|| {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(&manifest, &rendered.stdout)
                .with_context(|| format!("cannot write {}", manifest.display()))
        })?;
        let refs: Vec<(String, String)> = images
            .iter()
            .map(|d| (d.image.name.clone(), d.reference.clone()))
            .collect();
        let ids: Vec<(String, String)> = images
            .iter()
            .map(|d| (d.image.name.clone(), d.image.id.clone()))
            .collect();
        self.engine(session)?
            .apply(cx, &manifest, namespace, only, &refs, &ids)
    }

    /// The ingress `namespace/service` listening on `port`, as this machine
    /// reaches it: host and port.
    pub fn ingress(
        &self,
        cx: &Ctx,
        session: &Session,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<(String, u16)> {
        let engine = self.engine(session)?;
        self.cluster
            .ingress(cx, engine, &self.state_dir(), namespace, service, port)
    }

    /// Stops the background port-forward to the ingress, if any.
    pub fn stop_ingress(&self, cx: &Ctx) -> Result<()> {
        engine::stop_ingress_forward(cx, &self.state_dir())
    }
}

/// A row of `kube-engine status --json`.
#[derive(Deserialize)]
struct EngineRow {
    kind: String,
    name: String,
    ready: bool,
    detail: String,
}

impl Kube {
    /// What kube-mlops deployed there, as kube-engine's `status --json`
    /// lists it (a read: it runs under --dry-run too); None when a dry
    /// run did not reach the cluster (its blocker says why).
    fn deployed(&self, cx: &Ctx, session: &Session) -> Result<Option<Vec<EngineRow>>> {
        let engine = self.engine(session)?;
        if !engine.reached {
            return Ok(None);
        }
        let (binary, context) = (engine.binary(cx)?, &engine.context);
        let status: Command = cmd!(cx.sh, "{binary} --context {context} status --json").into();
        let out = cx
            .runner
            .probe(status, "reading what is deployed", STATUS_TIMEOUT)?;
        if !out.success {
            cx.runner.precondition(out.failure())?;
            return Ok(None);
        }
        Ok(Some(
            serde_json::from_str(&out.stdout).context("reading kube-engine's status")?,
        ))
    }
}

/// Status rows for a cluster a dry run did not reach: unknown, not absent.
fn unreached(specs: &[ServiceSpec]) -> Vec<StatusRow> {
    specs
        .iter()
        .map(|spec| StatusRow {
            service: spec.name.clone(),
            state: "unknown: the cluster was not reached".into(),
            healthy: false,
            url: None,
        })
        .collect()
}

impl Target for Kube {
    fn profile(&self) -> crate::build::Profile {
        self.cluster.profile()
    }

    fn blockers(&self, cx: &Ctx) -> Vec<String> {
        let mut found = self.cluster.blockers(cx);
        if found.is_empty()
            && let Ok(want) = self.cluster.context(cx)
            && cx.runner.on_path("kubectl")
            && let Ok(names) = kubecontext::names(cx)
        {
            let up = format!("cargo xtask cluster up --target {}", self.cluster.name());
            if !names.contains(&want) {
                found.push(format!("there is no kube context `{want}` yet: run `{up}`"));
            } else if let Some(why) = super::clusters::api::unready(cx, &want, "doctor") {
                found.push(format!(
                    "the API server of kube context `{want}` does not answer \
                     (`kubectl --context {want} get --raw /readyz`: {why}): start the cluster \
                     with `{up}`"
                ));
            } else if let Ok(have) = kubecontext::current(cx)
                && have.as_deref() != Some(want.as_str())
            {
                // What every command on this target would refuse.
                found.push(format!(
                    "the current kube context is {}, and --target {} acts only on `{want}`: \
                     switch with `cargo xtask context use {want}`",
                    have.map_or_else(|| "not set".to_string(), |h| format!("`{h}`")),
                    self.cluster.name()
                ));
            }
        }
        found
    }

    fn manifests(&self, _cx: &Ctx) -> Option<PathBuf> {
        Some(self.kubernetes.manifests_dir.clone())
    }

    fn dev_loop(&self) -> Result<()> {
        self.cluster.dev_loop()
    }

    fn overlay(&self, _cx: &Ctx) -> Option<PathBuf> {
        Some(
            self.kubernetes
                .manifests_dir
                .join("overlays")
                .join(self.cluster.name().as_str()),
        )
    }

    fn machines_run(&self) -> Option<String> {
        Some(format!("{}'s machines run", self.cluster.name()))
    }

    fn tools(&self) -> &'static [&'static str] {
        self.cluster.tools()
    }

    fn open(&self, cx: &Ctx) -> Result<Session> {
        let name = self.cluster.name();
        let want = match self.cluster.context(cx) {
            Ok(w) => w,
            Err(e) => {
                cx.runner.precondition(e)?;
                "<context>".to_string()
            }
        };
        let guarded = kubecontext::guard(cx, name.as_str(), &want, None)?;
        let mut engine = Engine::new(guarded.context, &self.kubernetes);
        engine.reached = guarded.approved;
        Ok(Session { kube: Some(engine) })
    }

    fn prepare(&self, cx: &Ctx, session: &Session, delivering: bool) -> Result<()> {
        // Before anything is built: the manifests must be what the settings
        // say (status, logs and teardown work whatever they are).
        crate::manifests::refuse_stale(cx, &self.manifests(), self.all_services())?;
        let engine = self.engine(session)?;
        eprintln!(
            "==> kube context {} (the one --target {} expects)",
            engine.context,
            self.cluster.name()
        );
        // Every tool the cluster needs, before minutes of building (a real
        // run stops at the first missing; a dry run lists them).
        let purpose = format!("--target {}", self.cluster.name());
        for tool in self.cluster.tools() {
            cx.runner.locate(tool, &purpose)?;
        }
        // Where images go takes them (a registry: it answers and accepts
        // the credentials), before minutes of building.
        if let Some(first) = self.setup.all.first().filter(|_| delivering) {
            self.cluster
                .publisher(cx)
                .preflight(cx, &first.settings.image)?;
        }
        // Built before any image is pushed, so a build failure changes nothing.
        engine.binary(cx)?;
        Ok(())
    }

    fn platform(&self, cx: &Ctx, session: &Session) -> Result<Option<Platform>> {
        let platforms = self.engine(session)?.platforms(cx)?;
        match platforms.as_slice() {
            // Not up yet (or a dry run without it): what it will run.
            [] => self.cluster.planned_platform(cx),
            [one] => Ok(Some(*one)),
            several => bail!(
                "the cluster's nodes run {}: one image is built for one platform (give \
                 --platform to choose, and keep the pods on those nodes with a nodeSelector \
                 on kubernetes.io/arch)",
                several
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        }
    }

    fn deliver(&self, cx: &Ctx, session: &Session, built: Vec<Built>) -> Result<Delivered> {
        let images = image::images_from(cx, &self.setup, &built, Builder::Native)?;
        self.deliver_images(cx, session, built, images)
    }

    fn deliver_images(
        &self,
        cx: &Ctx,
        _session: &Session,
        built: Vec<Built>,
        images: Vec<image::Image>,
    ) -> Result<Delivered> {
        let publisher = self.cluster.publisher(cx);
        Delivered::published(cx, publisher.as_ref(), built, images)
    }

    fn apply(&self, cx: &Ctx, session: &Session, delivered: &Delivered) -> Result<()> {
        let overlay = self
            .overlay(cx)
            .context("a Kubernetes target has an overlay")?;
        let only: Vec<&str> = delivered
            .built
            .iter()
            .map(|b| b.spec.name.as_str())
            .collect();
        // The engine's apply waits for every rollout (and explains a failure).
        self.apply_dir(
            cx,
            session,
            &overlay,
            &self.kubernetes.namespace,
            &only,
            &delivered.images,
        )
    }

    fn urls(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        let engine = self.engine(session)?;
        let state = self.state_dir();
        specs
            .iter()
            .map(|spec| self.cluster.service_url(cx, engine, &state, spec))
            .collect()
    }

    fn notes(&self, cx: &Ctx, _session: &Session) -> Vec<String> {
        self.cluster.reached_by(cx).into_iter().collect()
    }

    fn status(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<StatusRow>> {
        let Some(rows) = self.deployed(cx, session)? else {
            return Ok(unreached(specs));
        };
        // Deployments of ours whose service the settings no longer have.
        let configured = &self.services;
        let extra = rows
            .iter()
            .filter(|r| r.kind == "deployment" && !configured.contains(&r.name))
            .map(|r| StatusRow {
                service: r.name.clone(),
                state: format!(
                    "{}; no longer in the settings: `cargo xtask teardown --target {}` removes it",
                    r.detail,
                    self.cluster.name()
                ),
                healthy: true,
                url: None,
            })
            .collect::<Vec<_>>();
        Ok(specs
            .iter()
            .map(|spec| {
                let mine = |kind: &str| rows.iter().find(|r| r.kind == kind && r.name == spec.name);
                match (mine("deployment"), mine("service")) {
                    (Some(d), svc) => StatusRow {
                        service: spec.name.clone(),
                        state: match svc {
                            Some(s) => format!("{}; service {}", d.detail, s.detail),
                            None => format!("{}; no service", d.detail),
                        },
                        healthy: d.ready && svc.is_some_and(|s| s.ready),
                        url: None,
                    },
                    (None, _) => StatusRow {
                        service: spec.name.clone(),
                        state: "not deployed".into(),
                        healthy: false,
                        url: None,
                    },
                }
            })
            .chain(extra)
            .collect())
    }

    fn logs(
        &self,
        cx: &Ctx,
        session: &Session,
        spec: &ServiceSpec,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<()> {
        let engine = self.engine(session)?;
        let (binary, context) = (engine.binary(cx)?, &engine.context);
        let namespace = &self.kubernetes.namespace;
        let selector = format!("app.kubernetes.io/name={}", spec.name);
        let tail = tail.map_or_else(Vec::new, |n| vec!["--tail".to_string(), n.to_string()]);
        let follow = follow.then_some("--follow");
        cx.runner.run_inherited(
            cmd!(
                cx.sh,
                "{binary} --context {context} logs --namespace {namespace} --selector {selector} {tail...} {follow...}"
            ),
            "reading pod logs",
        )
    }

    fn teardown(&self, cx: &Ctx, session: &Session, specs: &[ServiceSpec]) -> Result<Vec<String>> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.state_dir();
        for spec in specs {
            engine::stop_forward(cx, &state, &spec.name)?;
        }
        // What is there now, to say what this removed.
        let there: Vec<String> = self
            .deployed(cx, session)?
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.kind == "deployment")
            .map(|r| r.name)
            .collect();
        if specs.len() < self.all_services().len() {
            // Some services (the dev loop's): theirs only; the ingress stays.
            let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
            let selector = format!(
                "{MANAGED_BY},app.kubernetes.io/name in ({})",
                names.join(",")
            );
            self.engine(session)?.delete_labelled(cx, &selector)?;
            return Ok(there
                .into_iter()
                .filter(|n| names.contains(&n.as_str()))
                .collect());
        }
        self.stop_ingress(cx)?;
        self.engine(session)?.delete_labelled(cx, MANAGED_BY)?;
        Ok(there)
    }
}
