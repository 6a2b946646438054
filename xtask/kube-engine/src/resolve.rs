//! From apiVersion/kind to the API endpoint, through the cluster's discovery
//! API, so any kind the cluster serves can be applied, custom resources included.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::discovery::{self, ApiCapabilities, ApiResource, Scope};
use kube::{Client, Error};

/// Discovery results, cached for one run.
pub struct Resolver {
    client: Client,
    cache: HashMap<(String, String), (ApiResource, ApiCapabilities)>,
}

/// The cluster does not serve this kind: usually a CRD that is not installed.
#[derive(Debug)]
pub struct NotServed {
    pub api_version: String,
    pub kind: String,
}

impl std::fmt::Display for NotServed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the cluster does not serve {} ({}): its CustomResourceDefinition is not installed",
            self.kind, self.api_version
        )?;
        if let Some(hint) = install_hint(&self.api_version) {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NotServed {}

/// What installs the kinds we know about.
fn install_hint(api_version: &str) -> Option<&'static str> {
    api_version
        .starts_with("machinelearning.seldon.io/")
        .then_some(
            "Seldon Core is not installed on this cluster: run \
         `cargo xtask seldon install --target <target>` first",
        )
}

impl Resolver {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            cache: HashMap::new(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Look up a kind; a kind the cluster does not serve is a [`NotServed`] error.
    pub async fn resolve(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, ApiCapabilities)> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(found) = self.cache.get(&key) {
            return Ok(found.clone());
        }
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let not_served = || NotServed {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        };
        let found = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok(found) => found,
            Err(Error::Api(status)) if status.code == 404 => return Err(not_served().into()),
            Err(Error::Discovery(_)) => return Err(not_served().into()),
            Err(e) => {
                return Err(anyhow!(e).context(format!(
                    "looking up {kind} ({api_version}) in the cluster's API"
                )));
            }
        };
        self.cache.insert(key, found.clone());
        Ok(found)
    }

    /// Like [`Self::resolve`], but `None` when the cluster does not serve the kind.
    pub async fn resolve_if_served(
        &mut self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, ApiCapabilities)>> {
        match self.resolve(api_version, kind).await {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.is::<NotServed>() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The API for one object: its namespace (or `default_ns`) when the kind
    /// is namespaced, cluster-wide otherwise.
    pub async fn api_for(
        &mut self,
        obj: &DynamicObject,
        default_ns: &str,
    ) -> Result<Api<DynamicObject>> {
        let types = obj.types.clone().unwrap_or_default();
        let (ar, caps) = self.resolve(&types.api_version, &types.kind).await?;
        Ok(match caps.scope {
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or(default_ns);
                Api::namespaced_with(self.client.clone(), ns, &ar)
            }
            Scope::Cluster => Api::all_with(self.client.clone(), &ar),
        })
    }
}
