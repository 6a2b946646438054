//! GKE: the tutorial's `gcloud container clusters create … --num-nodes 3`
//! after a preflight (gcloud, an account, a project, the Kubernetes Engine
//! API), then `get-credentials`; images pushed to the registry and pinned by
//! digest; services and the ingress reached at their LoadBalancer's
//! external IP.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, bail};
use xshell::cmd;

use super::cluster::Cluster;
use crate::build::platform::Platform;
use crate::ground::context::Ctx;
use crate::ground::http;
use crate::ground::names;
use crate::ground::poll::{self, Waited};
use crate::ground::runner::{Blocked, Cause, Probe, quote};
use crate::ground::services::ServiceSpec;
use crate::ground::settings::{self, TargetName};
use crate::publish::publisher::Publisher;
use crate::publish::registry::Registry;
use crate::targets::engine::Engine;

/// `[gke]`: the project (empty: gcloud's), zone, cluster, machine type and node count `cluster up` creates.
#[derive(serde::Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub project: String,
    pub zone: String,
    pub cluster: String,
    pub machine_type: String,
    pub num_nodes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            project: String::new(),
            zone: "us-central1-a".into(),
            cluster: "k8s-test-cluster".into(),
            machine_type: "e2-standard-2".into(),
            num_nodes: 3,
        }
    }
}

impl Settings {
    /// # Errors
    /// A cluster, zone or project name Google Cloud would refuse.
    fn check(self) -> Result<Self> {
        names::gke_cluster(&self.cluster)
            .map_err(|why| anyhow::anyhow!("gke.cluster = {:?} {why}", self.cluster))?;
        names::gcloud_id(&self.zone, 2, 63)
            .map_err(|why| anyhow::anyhow!("gke.zone = {:?} {why}", self.zone))?;
        if !self.project.is_empty() {
            names::gcloud_id(&self.project, 6, 30)
                .map_err(|why| anyhow::anyhow!("gke.project = {:?} {why}", self.project))?;
        }
        Ok(self)
    }
}

/// `--target gke`.
pub const KIND: super::cluster::ClusterKind = super::cluster::ClusterKind {
    name: TargetName::named("gke"),
    about: "A GKE cluster on Google Cloud",
    loads_images: false,
    tools: &[crate::ground::tools::Tool {
        name: "gcloud",
        version_args: &["version"],
        version_exits_0: true,
        also_for: "",
        debian: "apt-get install google-cloud-cli (from the Google Cloud apt repository)",
        macos: "brew install --cask google-cloud-sdk",
    }],
    make: |config| {
        Ok(Box::new(Gke {
            settings: super::cluster::table::<Settings>(config, KIND.name)?.check()?,
            registry: config.registry.clone(),
            images: crate::ground::services::image_names(&config.services),
            namespace: config.kubernetes.namespace.clone(),
            address_timeout_secs: config.kubernetes.address_timeout_secs,
            project: std::sync::OnceLock::new(),
        }))
    },
};

/// The GKE cluster `[gke]` describes; images pushed to `[registry]` when
/// set (else the project's Artifact Registry); its services in `namespace`.
pub struct Gke {
    pub(super) settings: Settings,
    pub(super) registry: settings::Registry,
    /// Every image name of the settings: siblings a push mounts from.
    pub(super) images: Vec<String>,
    pub(super) namespace: String,
    /// Seconds to wait for a LoadBalancer's address to carry traffic.
    pub(super) address_timeout_secs: u64,
    /// The project, found once (`project`).
    pub(super) project: std::sync::OnceLock<String>,
}

/// The platform of a Compute Engine machine type's CPU: the Arm series
/// (T2A, Ampere Altra; C4A and N4A, Google Axion: `t2a-standard-4`,
/// `c4a-highcpu-8`; A4X, NVIDIA Grace: `a4x-highgpu-4g`) run linux/arm64,
/// every other series (`e2-standard-2`, `n2d-…`, `c3-…`) linux/amd64.
/// Source: Compute Engine's machine families guide, "Arm" series.
pub fn machine_platform(machine_type: &str) -> Platform {
    let series = machine_type
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if matches!(series.as_str(), "t2a" | "c4a" | "n4a" | "a4x") {
        Platform::LINUX_ARM64
    } else {
        Platform::LINUX_AMD64
    }
}

/// The missing project, as every step that needs it refuses: of one cause,
/// so that a dry run names it once.
fn no_project() -> anyhow::Error {
    Blocked::error(
        Cause::GcpProject,
        "--target gke needs a Google Cloud project: set `project` under [gke] in xtask.toml, \
         or gcloud's default with `gcloud config set project PROJECT_ID`",
    )
}

/// The project GKE works in: `g.project`, else gcloud's configured
/// project (`gcloud config get-value project`, what gcloud itself would
/// use), said once on stderr; "" when neither is set. Read once per run.
/// A deploy still acts only on the context `gke_<project>_<zone>_<cluster>`.
pub fn project<'a>(cx: &Ctx, g: &'a Gke) -> &'a str {
    g.project.get_or_init(|| {
        let set = g.settings.project.trim();
        if !set.is_empty() {
            return set.to_string();
        }
        if which::which("gcloud").is_err() {
            return String::new();
        }
        let found = cx
            .runner
            .probe(
                cmd!(cx.sh, "gcloud config get-value project"),
                "finding gcloud's project",
                Duration::from_secs(60),
            )
            .ok()
            .filter(|p| p.success)
            .map(|p| p.stdout.trim().to_string())
            .filter(|p| !p.is_empty() && p != "(unset)");
        match found {
            Some(p) if crate::ground::names::gcloud_id(&p, 6, 30).is_ok() => {
                eprintln!(
                    "==> GKE project {p}, from gcloud's config (set `project` under [gke] in \
                     xtask.toml to pin one)"
                );
                p
            }
            Some(p) => {
                eprintln!("==> gcloud's configured project {p:?} is not a project ID; ignored");
                String::new()
            }
            None => String::new(),
        }
    })
}

/// `project`, or `<project>` in a dry run's plan when there is none.
fn project_or_placeholder<'a>(cx: &Ctx, g: &'a Gke) -> &'a str {
    match project(cx, g) {
        "" => "<project>",
        p => p,
    }
}

impl Cluster for Gke {
    fn name(&self) -> TargetName {
        KIND.name
    }

    fn dev_loop(&self) -> Result<()> {
        bail!(
            "the dev loop runs on local, docker and the local clusters (`cargo xtask dev \
             --help` names them), not gke: every round would push images over the network \
             and wait for a remote rollout. Iterate with `cargo xtask dev --target kind` (or \
             another local cluster), then `cargo xtask deploy --target gke`"
        )
    }

    /// Images are pushed and pulled over the network: the size profile.
    fn profile(&self) -> crate::build::Profile {
        crate::build::Profile::Dist
    }

    fn context(&self, cx: &Ctx) -> Result<String> {
        let g = &self.settings;
        match project(cx, self) {
            "" => Err(no_project()),
            p => Ok(format!("gke_{p}_{}_{}", g.zone, g.cluster)),
        }
    }

    fn tools(&self) -> &'static [&'static str] {
        &["cargo", "kubectl", "gcloud"]
    }

    fn blockers(&self, cx: &Ctx) -> Vec<String> {
        match problems(cx, self) {
            Ok(found) => found.iter().map(|e| format!("{e:#}")).collect(),
            Err(e) => vec![format!("{e:#}")],
        }
    }

    /// The machine type's CPU (`[gke] machine_type`: what `cluster up`
    /// creates the nodes with).
    fn planned_platform(&self, _cx: &Ctx) -> Result<Option<Platform>> {
        Ok(Some(machine_platform(&self.settings.machine_type)))
    }

    fn up(&self, cx: &Ctx) -> Result<()> {
        let g = &self.settings;
        preflight(cx, self)?;
        let (cluster, nodes, machine, zone, project) = (
            &g.cluster,
            g.num_nodes.to_string(),
            &g.machine_type,
            &g.zone,
            project_or_placeholder(cx, self),
        );
        cx.runner.run(
            cmd!(
                cx.sh,
                "gcloud container clusters create {cluster} --num-nodes {nodes} --machine-type {machine} --zone {zone} --project {project}"
            ),
            "creating a GKE cluster",
        )?;
        cx.runner.run(
            cmd!(
                cx.sh,
                "gcloud container clusters get-credentials {cluster} --zone {zone} --project {project}"
            ),
            "fetching GKE credentials",
        )?;
        Ok(())
    }

    fn down(&self, cx: &Ctx, confirmed: bool) -> Result<()> {
        let g = &self.settings;
        if project(cx, self).is_empty() {
            cx.runner.precondition(no_project())?;
        }
        let what = format!(
            "GKE cluster {} in {} ({})",
            g.cluster,
            project_or_placeholder(cx, self),
            g.zone
        );
        let ask = || confirm(&format!("Delete the {what}?"));
        if !confirmed && cx.runner.unless_dry_run(ask)? == Some(false) {
            bail!("not deleting the {what} without confirmation: pass --yes");
        }
        let (cluster, zone, project) = (&g.cluster, &g.zone, project_or_placeholder(cx, self));
        cx.runner.run(
            cmd!(
                cx.sh,
                "gcloud container clusters delete {cluster} --zone {zone} --project {project} --quiet"
            ),
            "deleting a GKE cluster",
        )?;
        Ok(())
    }

    fn status(&self, cx: &Ctx) -> Result<Probe> {
        let g = &self.settings;
        let (cluster, zone, project) = (&g.cluster, &g.zone, project_or_placeholder(cx, self));
        cx.runner.probe(
            cmd!(
                cx.sh,
                "gcloud container clusters describe {cluster} --zone {zone} --project {project} --format=value(status,currentNodeCount,currentMasterVersion)"
            ),
            "cluster status",
            Duration::from_secs(60),
        )
    }

    fn publisher(&self, cx: &Ctx) -> Box<dyn Publisher> {
        // Pinned by digest: the cluster runs exactly what was built. Without
        // a [registry] setting, into the project's own Artifact Registry.
        let set = self.registry.set;
        let registry = Registry {
            base: (!set).then(|| artifact_registry(cx, self)),
            insecure: false,
            siblings: self.images.clone(),
            settings: self.registry.clone(),
        };
        if set {
            Box::new(registry)
        } else {
            Box::new(ArtifactRegistry {
                registry,
                region: region(&self.settings.zone).to_string(),
                project: project_or_placeholder(cx, self).to_string(),
            })
        }
    }

    fn service_url(
        &self,
        cx: &Ctx,
        engine: &Engine,
        _state: &Path,
        spec: &ServiceSpec,
    ) -> Result<String> {
        let namespace = &self.namespace;
        Ok(match engine.load_balancer(cx, namespace, &spec.name)? {
            Some(address) => {
                let url = format!("http://{address}:{}", spec.settings.port);
                let secs = self.address_timeout_secs;
                through_load_balancer(cx, &url, namespace, &spec.name, secs)?;
                url
            }
            None => format!(
                "http://<external IP of {}>:{}",
                spec.name, spec.settings.port
            ),
        })
    }

    fn ingress(
        &self,
        cx: &Ctx,
        engine: &Engine,
        _state: &Path,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Result<(String, u16)> {
        Ok(match engine.load_balancer(cx, namespace, service)? {
            Some(address) => (address, port),
            None => (format!("<external IP of {namespace}/{service}>"), port),
        })
    }

    fn needs_admin_binding(&self) -> bool {
        true
    }

    /// The active gcloud account (the tutorial binds it to cluster-admin).
    fn admin_user(&self, cx: &Ctx) -> Result<String> {
        let p = cx.runner.probe(
            cmd!(cx.sh, "gcloud config get-value account"),
            "finding the gcloud account",
            Duration::from_secs(60),
        )?;
        let account = p.stdout.trim();
        if !p.success || account.is_empty() || account == "(unset)" {
            cx.runner.precondition(anyhow::anyhow!(
                "no active gcloud account to grant cluster-admin to: run `gcloud auth login`"
            ))?;
            return Ok("<account>".to_string());
        }
        Ok(account.to_string())
    }
}

/// Waits until `url` (service `namespace/service`'s new LoadBalancer
/// address) answers `/readyz`: GKE reports the external IP before its
/// forwarding rules carry traffic, a minute or more on a new load
/// balancer, so one attempt would fail a healthy deploy. Gives up after
/// `secs` (`kubernetes.address_timeout_secs`) with the last answer seen.
fn through_load_balancer(
    cx: &Ctx,
    url: &str,
    namespace: &str,
    service: &str,
    secs: u64,
) -> Result<()> {
    let what = format!("wait until {url} answers through the load balancer (up to {secs}s)");
    cx.runner.step(what);
    cx.runner.unless_dry_run(|| {
        match poll::until(Duration::from_secs(secs), Duration::from_secs(2), || {
            Ok(http::readiness(url))
        })? {
            Waited::Done { after, .. } => {
                eprintln!(
                    "  ✓ {url} answers through the load balancer ({:.0}s after its address)",
                    after.as_secs_f64()
                );
                Ok(())
            }
            Waited::TimedOut { last } => bail!(
                "{url} did not answer through the load balancer within {secs}s \
                 (kubernetes.address_timeout_secs); the last attempt: {last}. A new load balancer \
                 can take minutes: raise the setting, or look at \
                 `kubectl describe service -n {namespace} {service}` and the project's firewall rules"
            ),
        }
    })?;
    Ok(())
}

/// What GKE needs before anything is created: gcloud, an account, a
/// project, and the Kubernetes Engine API enabled. Each gap is named.
fn preflight(cx: &Ctx, g: &Gke) -> Result<()> {
    cx.runner.locate("gcloud", "creating a GKE cluster")?;
    let problems = problems(cx, g)?;
    // A real run stops at the first gap; a dry run lists every one and
    // plans on.
    let gaps = !problems.is_empty();
    for p in problems {
        cx.runner.precondition(p)?;
    }
    if gaps {
        return Ok(());
    }
    eprintln!(
        "==> gcloud: account {}, project {}",
        account(cx)?.unwrap_or_default(),
        project(cx, g)
    );
    Ok(())
}

/// The active gcloud account, if any.
fn account(cx: &Ctx) -> Result<Option<String>> {
    let p = cx.runner.probe(
        cmd!(cx.sh, "gcloud config get-value account"),
        "finding the gcloud account",
        Duration::from_secs(60),
    )?;
    let a = p.stdout.trim();
    Ok((p.success && !a.is_empty() && a != "(unset)").then(|| a.to_string()))
}

/// Everything missing for GKE, each with what to do: an account, a project
/// (`gke.project`, else gcloud's configured one: see `project`), the
/// Kubernetes Engine API, and the `gke-gcloud-auth-plugin` kubectl needs
/// for GKE's contexts.
///
/// # Errors
/// gcloud failing in a way that says nothing about these.
pub fn problems(cx: &Ctx, g: &Gke) -> Result<Vec<anyhow::Error>> {
    let mut found = Vec::new();
    if account(cx)?.is_none() {
        found.push(anyhow::anyhow!(
            "gcloud has no active account: run `gcloud auth login` (or activate a service account)"
        ));
    }
    let project = project(cx, g);
    if project.is_empty() {
        found.push(no_project());
    } else if found.is_empty() {
        let p = cx.runner.probe(
            cmd!(
                cx.sh,
                "gcloud services list --enabled --project {project} --filter=config.name=container.googleapis.com --format=value(config.name)"
            ),
            "checking the Kubernetes Engine API",
            Duration::from_secs(60),
        )?;
        if !p.success {
            found.push(p.failure_saying(format!(
                "`gcloud services list --project {project}` failed: {}",
                p.stderr.trim()
            )));
        } else if p.stdout.trim().is_empty() {
            found.push(anyhow::anyhow!(
                "the Kubernetes Engine API is not enabled in project {project}: run `gcloud services enable container.googleapis.com --project {}`",
                quote(project)
            ));
        }
    }
    if cx
        .runner
        .locate("gke-gcloud-auth-plugin", "reaching GKE clusters")
        .is_err()
    {
        found.push(anyhow::anyhow!(
            "gke-gcloud-auth-plugin is not installed (kubectl needs it for GKE): run \
             `gcloud components install gke-gcloud-auth-plugin` (or apt-get install \
             google-cloud-cli-gke-gcloud-auth-plugin)"
        ));
    }
    Ok(found)
}

/// The project's Artifact Registry, where GKE pushes without a
/// `[registry]`: its credentials come from gcloud (`gcloud auth
/// configure-docker`), so an active account is checked first and named as
/// the cause.
struct ArtifactRegistry {
    registry: Registry,
    /// The zone's region and the project, for the hint that creates the
    /// repository.
    region: String,
    project: String,
}

impl Publisher for ArtifactRegistry {
    fn destination(&self, cx: &Ctx) -> String {
        self.registry.destination(cx)
    }

    fn pushes(&self) -> bool {
        true
    }

    fn preflight(&self, cx: &Ctx, image: &str) -> Result<()> {
        let base = self.registry.destination(cx);
        let host = base.split('/').next().unwrap_or_default().to_string();
        eprintln!(
            "==> no [registry] in the settings: pushing to Artifact Registry {base} (create the \
             repository once: gcloud artifacts repositories create kube-mlops \
             --repository-format=docker --location={} --project {}); set [registry] to push \
             elsewhere",
            self.region, self.project
        );
        if which::which("gcloud").is_ok() && account(cx)?.is_none() {
            return cx.runner.precondition(anyhow::anyhow!(
                "pushing images to Artifact Registry needs an active gcloud account: run `gcloud \
                 auth login`, then `gcloud auth configure-docker {host}`"
            ));
        }
        self.registry.preflight(cx, image)
    }

    fn publish(&self, cx: &Ctx, image: &crate::image::Image) -> Result<String> {
        self.registry.publish(cx, image)
    }
}

/// A zone's region: `us-central1-a` is in `us-central1`.
fn region(zone: &str) -> &str {
    zone.rsplit_once('-').map_or(zone, |(r, _)| r)
}

/// `<region>-docker.pkg.dev/<project>/kube-mlops`: the project's Artifact
/// Registry repository for the cluster's region.
pub fn artifact_registry(cx: &Ctx, g: &Gke) -> String {
    format!(
        "{}-docker.pkg.dev/{}/kube-mlops",
        region(&g.settings.zone),
        project_or_placeholder(cx, g)
    )
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_anything_uses_them() -> anyhow::Result<()> {
        let text = "[gke]\nproject = \"My Project\"";
        let config = crate::ground::settings::parse(text)?;
        let e = format!(
            "{:#}",
            super::super::check(&config, text).expect_err("taken")
        );
        assert!(e.starts_with("line 2: gke.project"), "{e}");
        Ok(())
    }

    #[test]
    fn the_committed_settings_spell_out_the_defaults() -> anyhow::Result<()> {
        super::super::cluster::spelled_out::<Settings>(KIND.name)
    }

    #[test]
    fn arm_machine_series_run_arm64_and_the_rest_amd64() {
        for arm in [
            "t2a-standard-4",
            "c4a-highcpu-8",
            "N4A-standard-2",
            "a4x-highgpu-4g",
        ] {
            assert_eq!(machine_platform(arm), Platform::LINUX_ARM64, "{arm}");
        }
        for x86 in [
            "e2-standard-2",
            "n2d-standard-4",
            "c3-highcpu-8",
            "n1-standard-1",
            "",
        ] {
            assert_eq!(machine_platform(x86), Platform::LINUX_AMD64, "{x86}");
        }
    }
}
