//! What kube-mlops and its manifests agree on.

/// Everything kube-mlops deploys carries this label (containers, Kubernetes
/// objects); teardown deletes by it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=kube-mlops";

/// The port every service listens on in its container and pod (the image's
/// `EXPOSE`, deploy/base's container port and Service port).
pub const CONTAINER_PORT: u16 = 5000;
