//! What a command runs with: the ambient context (`Ctx`) and the settings,
//! read once. The commands make values of the settings here (the selected
//! services, the target, its cluster, how images are made) and hand the
//! layers below those values, never the settings: an `&Invocation`
//! coerces to the `&Ctx` they take, which has no settings.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::ground::context::{Ctx, Options};
use crate::ground::services::{self, ServiceSpec};
use crate::ground::settings::{Config, Loaded, TargetName};
use crate::targets::clusters::{self, Cluster};
use crate::targets::target::Target;

/// `default_target` of `loaded`, among the targets there are.
///
/// # Errors
/// No target is called so: the file, and the names there are.
fn default_target(loaded: &Loaded) -> Result<TargetName> {
    crate::targets::named(&loaded.config.default_target).map_err(|e| {
        anyhow::anyhow!(
            "invalid settings in {}: default_target: {e}",
            shown(loaded.source.as_deref())
        )
    })
}

/// The settings file for messages (None: the built-in settings).
fn shown(file: Option<&std::path::Path>) -> String {
    file.map_or_else(
        || "the built-in settings".into(),
        |p| p.display().to_string(),
    )
}

/// The generated manifests of `config`: `[kubernetes] manifests_dir` and
/// the namespaces they name.
pub fn manifests_of(config: &Config) -> crate::manifests::Manifests {
    crate::manifests::Manifests {
        dir: config.kubernetes.manifests_dir.clone(),
        namespace: config.kubernetes.namespace.clone(),
        seldon_namespace: config.seldon.namespace.clone(),
    }
}

/// The context and the settings of one command (a run of the xtask).
pub struct Invocation {
    cx: Ctx,
    pub config: Config,
    /// `default_target`, a name of `targets::all`.
    default_target: TargetName,
    /// The settings file read, or None for the built-in defaults.
    pub config_source: Option<PathBuf>,
}

impl std::ops::Deref for Invocation {
    type Target = Ctx;

    fn deref(&self) -> &Ctx {
        &self.cx
    }
}

impl Invocation {
    /// The context of `options` and the settings it names.
    ///
    /// # Errors
    /// As `Ctx::new`; settings that do not load, or whose
    /// `default_target` is no target.
    pub fn new(options: &Options) -> Result<Self> {
        let mut cx = Ctx::new(options)?;
        for kind in crate::targets::clusters::KINDS {
            cx.runner.know(kind.tools);
        }
        let loaded = Loaded::load(options.config.as_deref(), &cx.root)?;
        let default_target = default_target(&loaded)?;
        clusters::check(&loaded.config, &loaded.text)
            .with_context(|| format!("invalid settings in {}", shown(loaded.source.as_deref())))?;
        Ok(Self {
            cx,
            config: loaded.config,
            default_target,
            config_source: loaded.source,
        })
    }

    /// `--target` when given, else the configured default.
    pub fn target(&self, arg: Option<TargetName>) -> TargetName {
        arg.unwrap_or(self.default_target)
    }

    /// Every service of the settings, in deploy order.
    pub fn all_services(&self) -> Vec<ServiceSpec> {
        services::all(&self.config.services, &self.cx.root)
    }

    /// The services `names` names, in deploy order (all when empty).
    ///
    /// # Errors
    /// A name that is not a service, with the known ones.
    pub fn select(&self, names: &[String]) -> Result<Vec<ServiceSpec>> {
        services::select(&self.config.services, &self.cx.root, names)
    }

    /// How images are made: `[images]`, `[registry]`, every service.
    pub fn image_setup(&self) -> crate::image::Setup {
        crate::image::Setup {
            images: self.config.images.clone(),
            registry: self.config.registry.clone(),
            all: self.all_services(),
        }
    }

    /// The generated manifests: `[kubernetes] manifests_dir` and the
    /// namespaces they name.
    pub fn manifests(&self) -> crate::manifests::Manifests {
        manifests_of(&self.config)
    }

    /// The target `name`, holding its settings.
    ///
    /// # Errors
    /// As `targets::for_name` (not for settings `new` checked).
    pub fn target_for(&self, name: TargetName) -> Result<Box<dyn Target>> {
        crate::targets::for_name(name, &self.config, &self.image_setup())
    }

    /// The cluster behind `name`, holding its settings; None for local and
    /// docker.
    ///
    /// # Errors
    /// As `clusters::for_name` (not for settings `new` checked).
    pub fn cluster_for(&self, name: TargetName) -> Result<Option<Box<dyn Cluster>>> {
        clusters::for_name(name, &self.config)
    }

    /// The Kubernetes target `name` (its cluster, `[kubernetes]`,
    /// `[seldon]`, how its images are made); None for local and docker.
    ///
    /// # Errors
    /// As `cluster_for`.
    pub fn kube_for(&self, name: TargetName) -> Result<Option<crate::targets::kube::Kube>> {
        Ok(self.cluster_for(name)?.map(|cluster| {
            crate::targets::kube::Kube::new(
                cluster,
                self.config.kubernetes.clone(),
                self.config.seldon.clone(),
                self.image_setup(),
            )
        }))
    }

    /// Every cluster kind, holding its settings.
    ///
    /// # Errors
    /// As `clusters::all` (not for settings `new` checked).
    pub fn clusters(&self) -> Result<Vec<Box<dyn Cluster>>> {
        clusters::all(&self.config)
    }

    /// The platform `name`'s machines run (`targets::machines_platform`).
    ///
    /// # Errors
    /// A cluster's engine reports a platform images are not built for.
    pub fn machines_platform(
        &self,
        name: TargetName,
    ) -> Result<Option<crate::build::platform::Platform>> {
        crate::targets::machines_platform(
            self,
            self.target_for(name)?.as_ref(),
            self.cluster_for(name)?.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_target_is_rejected() {
        let loaded = Loaded {
            config: crate::ground::settings::parse("default_target = \"mars\"\n").expect("parses"),
            source: None,
            text: String::new(),
        };
        let e = format!("{:#}", default_target(&loaded).expect_err("mars taken"));
        assert!(e.contains("mars"), "{e}");
        assert!(e.contains("local, docker, minikube"), "{e}");
    }
}
