//! `deploy/seldon/`: a SeldonDeployment (Seldon Core v1,
//! `machinelearning.seldon.io/v1`) for each service with `seldon = true`,
//! their namespace, and the kustomization listing them. Predictor
//! "default", one graph node of type MODEL whose name is the container's
//! (Seldon matches them by name).

use super::yaml::{self, GENERATED, yaml_env};
use crate::ground::services::ServiceSpec;

/// The label `teardown --seldon` deletes by.
pub const STACK_LABEL: (&str, &str) = ("kube-mlops.io/stack", "seldon");

/// `deploy/seldon/<service>.yaml`.
pub fn deployment(spec: &ServiceSpec) -> String {
    let s = &spec.settings;
    let name = &s.seldon_name;
    let image = &s.image;
    let replicas = s.replicas;
    let r = &s.resources;
    let env = yaml_env(&spec.env, 18);
    format!(
        r#"{GENERATED}
# The {service} service as a Seldon model component.
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata:
  name: {name}
spec:
  name: {name}
  predictors:
    - name: default
      replicas: {replicas}
      graph:
        name: {name}
        type: MODEL
        endpoint:
          type: REST
        children: []
      componentSpecs:
        - spec:
            automountServiceAccountToken: false
{pod_security}            containers:
              - name: {name}
                # Replaced by the image deploy built (pinned by digest when pushed).
                image: {image}
                imagePullPolicy: IfNotPresent
                env:
{env}{limits}"#,
        service = spec.name,
        pod_security = yaml::pod_security(12),
        limits = yaml::container_limits(r, 16),
    )
}

/// `deploy/seldon/namespace.yaml`.
pub fn namespace(ns: &str) -> String {
    format!(
        r#"{GENERATED}
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
  labels:
    # Seldon's operator adds its executor container to every model pod,
    # without the seccomp profile `restricted` requires: enforce `baseline`,
    # and warn and audit against `restricted` (our own containers meet it).
    pod-security.kubernetes.io/enforce: baseline
    pod-security.kubernetes.io/warn: restricted
    pod-security.kubernetes.io/audit: restricted
"#
    )
}

/// `deploy/seldon/kustomization.yaml`.
pub fn kustomization(ns: &str, specs: &[ServiceSpec]) -> String {
    let ours = yaml::ours(ns);
    let (stack_key, stack_value) = STACK_LABEL;
    let resources: String = specs
        .iter()
        .map(|s| format!("  - {}.yaml\n", s.name))
        .collect();
    format!(
        r#"{GENERATED}
# The models as SeldonDeployments (Seldon Core v1 must be installed:
# `cargo xtask seldon install`). Usable without our tool once the image name is
# set: `kubectl apply -k deploy/seldon`.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
{ours}      # `cargo xtask teardown --seldon` deletes by this label.
      {stack_key}: {stack_value}
resources:
  - namespace.yaml
  - network-policy.yaml
{resources}"#
    )
}
