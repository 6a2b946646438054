//! Pushes an image archive through the OCI distribution API: blobs the
//! registry already has are skipped, and the manifest goes up byte for byte,
//! so the digest the registry reports is the one we printed. Credentials
//! come from the docker config and its credential helpers (for example
//! docker-credential-gcloud) and are never printed.

use std::path::Path;

use anyhow::{Context, Result};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::image::oci;

/// What a push did.
pub struct Pushed {
    pub digest: String,
    pub uploaded: usize,
    pub skipped: usize,
}

/// Pushes `archive` as `repository:tag`. `insecure` allows plain HTTP.
pub fn push(archive: &Path, repository: &str, tag: &str, insecure: bool) -> Result<Pushed> {
    let blobs = oci::read_archive(archive)?;
    let manifest = oci::manifest_for(&blobs.config, &blobs.layers)?;
    let reference: Reference = format!("{repository}:{tag}")
        .parse()
        .with_context(|| format!("{repository}:{tag} is not a valid image reference"))?;
    let registry = reference.resolve_registry().to_string();
    let client = Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    });
    let auth = credentials(&registry);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        client
            .auth(&reference, &auth, RegistryOperation::Push)
            .await
            .with_context(|| {
                format!(
                    "cannot authenticate to {registry} for a push: log in with `docker login {}` or a credential helper",
                    crate::ground::runner::quote(&registry)
                )
            })?;
        let mut uploaded = 0;
        let mut skipped = 0;
        for blob in blobs.layers.iter().chain(std::iter::once(&blobs.config)) {
            let digest = oci::sha256(blob);
            if client.blob_exists(&reference, &digest).await.unwrap_or(false) {
                skipped += 1;
                continue;
            }
            client
                .push_blob(&reference, blob.clone(), &digest)
                .await
                .with_context(|| format!("uploading blob {digest} to {registry}"))?;
            uploaded += 1;
        }
        client
            .push_manifest_raw(
                &reference,
                manifest.clone(),
                "application/vnd.oci.image.manifest.v1+json".parse()?,
            )
            .await
            .with_context(|| format!("pushing the manifest of {repository}:{tag}"))?;
        Ok(Pushed {
            digest: oci::sha256(&manifest),
            uploaded,
            skipped,
        })
    })
}

/// From ~/.docker/config.json (auths, credsStore, credHelpers); anonymous
/// when there is nothing for this registry.
fn credentials(registry: &str) -> RegistryAuth {
    let lookup = |server: &str| docker_credential::get_credential(server).ok();
    let found = lookup(registry).or_else(|| {
        // Docker Hub's credentials are filed under its v1 URL.
        (registry == "docker.io" || registry == "index.docker.io")
            .then(|| lookup("https://index.docker.io/v1/"))
            .flatten()
    });
    match found {
        Some(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Some(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        None => RegistryAuth::Anonymous,
    }
}
