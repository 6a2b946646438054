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
    let upload = Upload::open(repository, insecure)?;
    let mut uploaded = 0;
    let mut skipped = 0;
    for blob in blobs.layers.iter().chain(std::iter::once(&blobs.config)) {
        if upload.blob(blob)? {
            uploaded += 1;
        } else {
            skipped += 1;
        }
    }
    let digest = upload.manifest(tag, &manifest, OCI_MANIFEST)?;
    Ok(Pushed {
        digest,
        uploaded,
        skipped,
    })
}

/// A client authenticated with one repository's registry for `operation`.
pub struct Session {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    /// `repository:probe`, for calls that need a reference.
    pub reference: Reference,
    pub registry: String,
    pub auth: RegistryAuth,
}

fn registry_of(repository: &str) -> String {
    repository
        .split('/')
        .next()
        .unwrap_or(repository)
        .to_string()
}

impl Session {
    /// # Errors
    /// A malformed repository, a registry that does not answer, refused
    /// credentials (never printed).
    pub fn open(repository: &str, insecure: bool, operation: RegistryOperation) -> Result<Self> {
        let reference: Reference = format!("{repository}:probe")
            .parse()
            .with_context(|| format!("{repository} is not a valid image repository"))?;
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
        rt.block_on(client.auth(&reference, &auth, operation))
            .with_context(|| {
                format!(
                    "cannot authenticate to {registry} (is it up? {})",
                    if insecure {
                        "plain HTTP"
                    } else {
                        "HTTPS: plain HTTP needs --insecure"
                    }
                )
            })?;
        Ok(Self {
            rt,
            client,
            reference,
            registry,
            auth,
        })
    }
}

/// The media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An authenticated session with one repository: blobs and manifests
/// pushed as given, byte for byte.
pub struct Upload {
    rt: tokio::runtime::Runtime,
    client: Client,
    reference: Reference,
    repository: String,
    registry: String,
}

impl Upload {
    /// Authenticates for a push to `repository` (`host/account/name`).
    ///
    /// # Errors
    /// A malformed repository, a registry that does not answer, credentials
    /// it refuses (the error says how to log in; never prints them).
    pub fn open(repository: &str, insecure: bool) -> Result<Self> {
        let Session {
            rt,
            client,
            reference,
            registry,
            ..
        } = Session::open(repository, insecure, RegistryOperation::Push).map_err(|e| {
            // What went wrong first (down, TLS, refused credentials), then
            // the login hint for the case it is about.
            anyhow::anyhow!(
                "{e:#}; if it is up, log in with `docker login {}` or a credential helper",
                crate::ground::runner::quote(&registry_of(repository))
            )
        })?;
        Ok(Self {
            rt,
            client,
            reference,
            repository: repository.to_string(),
            registry,
        })
    }

    /// Uploads `blob` unless the registry has it; whether it was uploaded.
    pub fn blob(&self, blob: &[u8]) -> Result<bool> {
        let digest = oci::sha256(blob);
        self.rt.block_on(async {
            if self
                .client
                .blob_exists(&self.reference, &digest)
                .await
                .unwrap_or(false)
            {
                return Ok(false);
            }
            self.client
                .push_blob(&self.reference, blob.to_vec(), &digest)
                .await
                .with_context(|| format!("uploading blob {digest} to {}", self.registry))?;
            Ok(true)
        })
    }

    /// Puts `manifest` (bytes as given) under `tag`; returns its digest.
    pub fn manifest(&self, tag: &str, manifest: &[u8], media_type: &str) -> Result<String> {
        let reference: Reference = format!("{}:{tag}", self.repository)
            .parse()
            .with_context(|| format!("{}:{tag} is not a valid image reference", self.repository))?;
        self.rt
            .block_on(self.client.push_manifest_raw(
                &reference,
                manifest.to_vec(),
                media_type.parse()?,
            ))
            .with_context(|| format!("pushing the manifest of {}:{tag}", self.repository))?;
        Ok(oci::sha256(manifest))
    }
}

/// From ~/.docker/config.json (auths, credsStore, credHelpers); anonymous
/// when there is nothing for this registry.
pub fn credentials(registry: &str) -> RegistryAuth {
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
