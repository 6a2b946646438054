//! The kustomize base (`deploy/base/`) and the PodDisruptionBudget
//! component (`deploy/components/pdb/`) generated from the services'
//! settings: one Deployment, Service and NetworkPolicy per service, with the
//! hardening every workload gets (non-root, read-only root, no privilege
//! escalation, all capabilities dropped, RuntimeDefault seccomp, probes,
//! resources, POD_IP, a drain inside the grace period).

use super::yaml::{self, GENERATED, quoted, yaml_env};
use crate::ground::conventions::CONTAINER_PORT;
use crate::ground::services::ServiceSpec;
use crate::ground::settings::ServiceKind;

/// `app.kubernetes.io/component`: what the service is.
fn component(spec: &ServiceSpec) -> &'static str {
    match spec.settings.kind {
        ServiceKind::Model(_) => "model",
        ServiceKind::Crate { .. } => "api",
    }
}

/// Seconds a pod drains after SIGTERM (SHUTDOWN_DRAIN_SECS), and the grace
/// period around it.
const DRAIN_SECS: u32 = 5;
const GRACE_SECS: u32 = 20;

/// `deploy/base/<service>.yaml`.
pub fn service(spec: &ServiceSpec) -> String {
    format!(
        "{}---\n{}---\n{}",
        deployment(spec),
        kube_service(spec),
        network_policy(&spec.name)
    )
}

/// The service's Deployment: one hardened container, probes, limits.
fn deployment(spec: &ServiceSpec) -> String {
    let name = &spec.name;
    let component = component(spec);
    let s = &spec.settings;
    let mut env = vec![
        ("PORT".to_string(), CONTAINER_PORT.to_string()),
        ("SHUTDOWN_DRAIN_SECS".to_string(), DRAIN_SECS.to_string()),
    ];
    // The service's own env wins over these defaults (each key once: the
    // API server refuses a container with a key twice).
    for (k, v) in &spec.env {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1.clone_from(v),
            None => env.push((k.clone(), v.clone())),
        }
    }
    let env = yaml_env(&env, 12);
    let image = &s.image;
    let replicas = s.replicas;
    format!(
        r#"{GENERATED}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/component: {component}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
        app.kubernetes.io/component: {component}
    spec:
      # Readiness turns false on SIGTERM and stays so for SHUTDOWN_DRAIN_SECS,
      # inside this grace period.
      terminationGracePeriodSeconds: {GRACE_SECS}
      automountServiceAccountToken: false
{pod_security}      containers:
        - name: {name}
          # Replaced by the image deploy built (pinned by digest when pushed).
          image: {image}
          imagePullPolicy: IfNotPresent
          ports:
            - name: http
              containerPort: {CONTAINER_PORT}
          env:
            - name: POD_IP
              valueFrom:
                fieldRef:
                  fieldPath: status.podIP
{env}          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 2
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 10
{limits}"#,
        pod_security = yaml::pod_security(6),
        limits = yaml::container_limits(&s.resources, 10),
    )
}

/// The Service in front of it, on the settings' port.
fn kube_service(spec: &ServiceSpec) -> String {
    let name = &spec.name;
    let component = component(spec);
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/component: {component}
spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    # The service's port from the settings (the same on every target); the
    # container listens on {CONTAINER_PORT}.
    - name: http
      port: {service_port}
      targetPort: http
"#,
        service_port = spec.settings.port,
    )
}

/// Its NetworkPolicy: ingress to the service port only, from its own
/// namespace and the ingress and Seldon namespaces.
fn network_policy(name: &str) -> String {
    format!(
        r#"# Only the service port, and only from this namespace and the ingress and
# Seldon namespaces (overlays that expose a LoadBalancer open the port to it).
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {name}
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        - port: http
      from:
        - podSelector: {{}}
        - namespaceSelector:
            matchExpressions:
              - key: kubernetes.io/metadata.name
                operator: In
                values: ["seldon", "seldon-system", "ambassador", "istio-system"]
"#
    )
}

/// `deploy/base/namespace.yaml`.
pub fn namespace(ns: &str) -> String {
    format!(
        r#"{GENERATED}
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    # Restricted pod security: what the workloads below are written for.
    pod-security.kubernetes.io/enforce: restricted
"#
    )
}

/// `deploy/base/kustomization.yaml`.
pub fn kustomization(ns: &str, specs: &[ServiceSpec]) -> String {
    let ours = yaml::ours(ns);
    let resources: String = specs
        .iter()
        .map(|s| format!("  - {}.yaml\n", s.name))
        .collect();
    format!(
        r#"{GENERATED}
# kube-mlops base: usable without our tool (`kubectl apply -k deploy/overlays/<target>`).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
{ours}resources:
  - namespace.yaml
{resources}"#
    )
}

/// `deploy/components/pdb/pdb.yaml`: for overlays that run two replicas or
/// more (gke), a node drain or upgrade keeps one pod of each serving.
pub fn pdbs(specs: &[ServiceSpec]) -> String {
    let docs: Vec<String> = specs
        .iter()
        .map(|s| {
            let name = &s.name;
            format!(
                r#"apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: {name}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
"#
            )
        })
        .collect();
    format!(
        "{GENERATED}\n# For overlays with two replicas or more: a node drain or upgrade keeps one serving.\n{}",
        docs.join("---\n")
    )
}

/// `deploy/components/load-balancer/`: for overlays that expose the
/// services as LoadBalancers (minikube, gke), whose traffic comes from
/// outside the cluster: one policy opening each service's port to it.
pub fn load_balancer(ns: &str, specs: &[ServiceSpec]) -> [String; 2] {
    let ours = yaml::ours(ns);
    let names: Vec<String> = specs.iter().map(|s| quoted(&s.name)).collect();
    let names = names.join(", ");
    [
        format!(
            r#"{GENERATED}
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
{ours}resources:
  - network-policy.yaml
"#
        ),
        format!(
            r#"{GENERATED}
# The services are exposed as LoadBalancers (as the tutorial does), whose
# traffic comes from outside the cluster: allow it, on the service port only.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: load-balancer
spec:
  podSelector:
    matchExpressions:
      - key: app.kubernetes.io/name
        operator: In
        values: [{names}]
  policyTypes: ["Ingress"]
  ingress:
    - ports:
        - port: http
      from:
        - ipBlock:
            cidr: 0.0.0.0/0
"#
        ),
    ]
}

/// `deploy/components/pdb/kustomization.yaml`.
pub fn pdb_component(ns: &str) -> String {
    let ours = yaml::ours(ns);
    format!(
        r#"{GENERATED}
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
{ours}resources:
  - pdb.yaml
"#
    )
}
