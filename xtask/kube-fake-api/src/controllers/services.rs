//! A cloud's load balancer: a Service of type LoadBalancer gets its
//! external address (`status.loadBalancer.ingress`) some time after it is
//! created, as GKE's takes a minute or more; without a cloud (minikube
//! without `minikube tunnel`, kind) it stays pending.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// The load balancers of the fake's "cloud".
#[derive(Default)]
pub struct LoadBalancers {
    /// The address every LoadBalancer service gets, and after how long;
    /// `None`: no cloud, addresses stay pending.
    pub assign: Option<(String, Duration)>,
    /// `namespace/name` → when the service was first seen pending.
    seen: HashMap<String, Instant>,
}

impl LoadBalancers {
    pub fn new(assign: Option<(String, Duration)>) -> Self {
        Self {
            assign,
            seen: HashMap::new(),
        }
    }

    pub async fn reconcile(&mut self, client: &Client) -> kube::Result<()> {
        let Some((ip, after)) = &self.assign else {
            return Ok(());
        };
        let all: Api<Service> = Api::all(client.clone());
        for svc in all.list(&ListParams::default()).await?.items {
            let balanced =
                svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
            let assigned = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.as_ref())
                .is_some_and(|i| !i.is_empty());
            if !balanced || assigned {
                continue;
            }
            let ns = svc.metadata.namespace.clone().unwrap_or_default();
            let name = svc.metadata.name.clone().unwrap_or_default();
            let first = *self
                .seen
                .entry(format!("{ns}/{name}"))
                .or_insert_with(Instant::now);
            if first.elapsed() < *after {
                continue;
            }
            let api: Api<Service> = Api::namespaced(client.clone(), &ns);
            let status =
                json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
            {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }
}
