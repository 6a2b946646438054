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
    /// Blobs sent.
    pub uploaded: usize,
    /// Blobs the repository had.
    pub skipped: usize,
    /// Blobs mounted from another repository of the registry, with the
    /// repository each came from (nothing sent).
    pub mounted: Vec<String>,
}

impl Pushed {
    /// `2 blob(s) uploaded, 1 mounted from host/acct/model-server, 0
    /// already there`.
    pub fn summary(&self) -> String {
        let mut from: Vec<&str> = self.mounted.iter().map(String::as_str).collect();
        from.sort_unstable();
        from.dedup();
        format!(
            "{} blob(s) uploaded, {} mounted{}, {} already there",
            self.uploaded,
            self.mounted.len(),
            if from.is_empty() {
                String::new()
            } else {
                format!(" from {}", from.join(", "))
            },
            self.skipped
        )
    }
}

/// Pushes `archive` as `repository:tag`. `insecure` allows plain HTTP. A
/// blob the repository lacks is mounted from the first of `siblings`
/// (other repositories of the same registry: the other images of the
/// settings) that has it, as `docker push` does (the distribution API's
/// cross-repository blob mount), so that an image sharing the model
/// server's layer sends only its own; otherwise it is uploaded.
pub fn push(
    archive: &Path,
    repository: &str,
    tag: &str,
    insecure: bool,
    siblings: &[String],
) -> Result<Pushed> {
    let mut pushed = Pushed {
        digest: String::new(),
        uploaded: 0,
        skipped: 0,
        mounted: Vec::new(),
    };
    // An image index: each platform's image by digest, then the index
    // under the tag (what `docker buildx` and ko push).
    if let Some(index) = oci::read_index_archive(archive)? {
        let upload = Upload::open(repository, insecure)?;
        for image in &index.images {
            pushed.send(&upload, &image.layers, &image.config, siblings)?;
            upload.manifest_by_digest(&image.manifest, OCI_MANIFEST)?;
        }
        pushed.digest = upload.manifest(tag, &index.index, oci::OCI_INDEX)?;
        return Ok(pushed);
    }
    let blobs = oci::read_archive(archive)?;
    let manifest = oci::manifest_for(&blobs.config, &blobs.layers)?;
    let upload = Upload::open(repository, insecure)?;
    pushed.send(&upload, &blobs.layers, &blobs.config, siblings)?;
    pushed.digest = upload.manifest(tag, &manifest, OCI_MANIFEST)?;
    Ok(pushed)
}

impl Pushed {
    /// Sends an image's layers and config, counting how each got there.
    fn send(
        &mut self,
        upload: &Upload,
        layers: &[Vec<u8>],
        config: &[u8],
        siblings: &[String],
    ) -> Result<()> {
        for blob in layers.iter().map(Vec::as_slice).chain([config]) {
            match upload.blob_from(blob, siblings)? {
                Sent::Uploaded => self.uploaded += 1,
                Sent::There => self.skipped += 1,
                Sent::Mounted(from) => self.mounted.push(from),
            }
        }
        Ok(())
    }
}

/// How a blob reached the repository.
pub enum Sent {
    Uploaded,
    /// It had it.
    There,
    /// Mounted from this repository.
    Mounted(String),
}

/// A registry that answers plain HTTP where HTTPS was asked for: said as
/// such (with the flag that allows it), not as a failed login.
#[derive(Debug)]
pub struct PlainHttp {
    pub registry: String,
}

impl std::fmt::Display for PlainHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} serves plain HTTP, not HTTPS: pass --insecure to use it (only for a registry \
             you trust, such as one on loopback)",
            self.registry
        )
    }
}

impl std::error::Error for PlainHttp {}

/// Whether `registry` answers the distribution API over plain HTTP.
fn answers_plain_http(registry: &str) -> bool {
    let url = format!("http://{registry}/v2/");
    let Ok(client) = crate::ground::http::client(&url) else {
        return false;
    };
    client
        .get(&url)
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .is_ok_and(|r| {
            r.headers().contains_key("docker-distribution-api-version")
                || matches!(r.status().as_u16(), 200 | 401)
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
            // A registry that takes the connection and never answers
            // fails the call instead of hanging it (an idle read, not a
            // whole upload, is what is timed).
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..ClientConfig::default()
        });
        let auth = credentials(&registry);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        if let Err(e) = rt.block_on(client.auth(&reference, &auth, operation)) {
            if !insecure && answers_plain_http(&registry) {
                return Err(PlainHttp { registry }.into());
            }
            return Err(anyhow::Error::new(e).context(format!(
                "cannot authenticate to {registry} (is it up? {})",
                if insecure {
                    "plain HTTP"
                } else {
                    "HTTPS: plain HTTP needs --insecure"
                }
            )));
        }
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
    auth: RegistryAuth,
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
            if e.downcast_ref::<PlainHttp>().is_some() {
                return e;
            }
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
            auth: credentials(&registry_of(repository)),
        })
    }

    /// Sends `blob` unless the repository has it: mounted from the first
    /// of `siblings` that has it, else uploaded.
    ///
    /// # Errors
    /// The upload fails.
    pub fn blob_from(&self, blob: &[u8], siblings: &[String]) -> Result<Sent> {
        let digest = oci::sha256(blob);
        let there = self.rt.block_on(async {
            self.client
                .blob_exists(&self.reference, &digest)
                .await
                .unwrap_or(false)
        });
        if there {
            return Ok(Sent::There);
        }
        for sibling in siblings.iter().filter(|s| **s != self.repository) {
            let Ok(source) = format!("{sibling}:probe").parse::<Reference>() else {
                continue;
            };
            if source.resolve_registry() != self.reference.resolve_registry() {
                continue;
            }
            let mounted = self.rt.block_on(async {
                // Reading the sibling needs its own pull token; a registry
                // that refuses just means no mount.
                let _ = self
                    .client
                    .auth(&source, &self.auth, RegistryOperation::Pull)
                    .await;
                self.client
                    .blob_exists(&source, &digest)
                    .await
                    .unwrap_or(false)
                    && self
                        .client
                        .mount_blob(&self.reference, &source, &digest)
                        .await
                        .is_ok()
            });
            if mounted {
                return Ok(Sent::Mounted(sibling.clone()));
            }
        }
        self.rt
            .block_on(
                self.client
                    .push_blob(&self.reference, blob.to_vec(), &digest),
            )
            .with_context(|| format!("uploading blob {digest} to {}", self.registry))?;
        Ok(Sent::Uploaded)
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
        self.put_manifest(&format!("{}:{tag}", self.repository), manifest, media_type)
    }

    /// Puts `manifest` (bytes as given) under its own digest, untagged (an
    /// image an index names); returns the digest.
    pub fn manifest_by_digest(&self, manifest: &[u8], media_type: &str) -> Result<String> {
        let digest = oci::sha256(manifest);
        self.put_manifest(
            &format!("{}@{digest}", self.repository),
            manifest,
            media_type,
        )
    }

    fn put_manifest(&self, name: &str, manifest: &[u8], media_type: &str) -> Result<String> {
        let reference: Reference = name
            .parse()
            .with_context(|| format!("{name} is not a valid image reference"))?;
        self.rt
            .block_on(self.client.push_manifest_raw(
                &reference,
                manifest.to_vec(),
                media_type.parse()?,
            ))
            .with_context(|| format!("pushing the manifest of {name}"))?;
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
