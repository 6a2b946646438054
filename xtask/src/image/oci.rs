//! Daemonless, reproducible image assembly on an empty base: one layer
//! holding the static binary and a non-root passwd/group, then, for a
//! model, a layer of its own holding the model files (so images of several
//! models share the server's layer and a registry stores it once).
//! Every tar header and JSON document is fixed by the inputs alone (modes,
//! owners, timestamps, key order), so the same inputs give the same digest.
//!
//! The result is one uncompressed tarball that is both an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) and a docker-archive
//! (`manifest.json`), which docker/podman load, minikube image load, kind load
//! image-archive and skopeo all read. Images of several platforms make an
//! OCI image index instead (`index`, `write_index_archive`): an image
//! layout only, which registries and skopeo read and engines do not load.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use oci_spec::image::{
    ConfigBuilder, Descriptor, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder,
    ImageIndex, ImageIndexBuilder, ImageManifest, ImageManifestBuilder, MediaType, PlatformBuilder,
    RootFsBuilder, SCHEMA_VERSION,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ground::files;

/// The unprivileged user images run as (distroless's "nonroot").
pub const UID: u32 = 65532;

/// One file of a layer: its path (relative, no leading /) and contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub contents: Contents,
}

/// A regular file (bytes and mode) or a symbolic link (its target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contents {
    File(Vec<u8>, u32),
    Link(String),
}

/// What goes into an image.
pub struct ImageSpec {
    /// Layers under everything else (a C runtime, a shared library), each
    /// named for its history (`libc6=2.36-9+deb12u14`); their files carry
    /// the epoch 0, so images on the same base share these layers. Empty:
    /// the image is `FROM scratch`.
    pub base_layers: Vec<(String, Vec<Entry>)>,
    pub bin_name: String,
    pub binary: Vec<u8>,
    /// Files beside the binary, in its layer: path inside the image (no
    /// leading /) and contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Files of a second layer (a model's), when not empty.
    pub model_files: Vec<(String, Vec<u8>)>,
    pub exposed_port: u16,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// OCI architecture name: amd64, arm64.
    pub arch: String,
    pub created: String,
    pub epoch: u64,
}

/// An image's blobs and digests.
pub struct Assembled {
    pub config: Vec<u8>,
    /// Uncompressed layers, base first.
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    /// `sha256:...` of the manifest: the image digest registries report.
    pub digest: String,
    /// `sha256:...` of the config: the image ID docker and podman show.
    pub config_digest: String,
    /// `sha256:...` of each (uncompressed) layer, its diff ID too.
    pub layer_digests: Vec<String>,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Serializes with sorted keys, whatever maps the value holds.
fn canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&serde_json::to_value(value)?)?)
}

pub fn assemble(spec: &ImageSpec) -> Result<Assembled> {
    let mut base = spec.files.clone();
    base.extend(system_files(&spec.bin_name, &spec.binary));
    let mut layers = Vec::new();
    let mut history = Vec::new();
    for (name, entries) in &spec.base_layers {
        layers.push(layer_of(entries, 0)?);
        history.push(format!("cargo xtask image build (base: {name})"));
    }
    layers.push(layer(&base, spec.epoch)?);
    history.push(format!("cargo xtask image build ({})", spec.bin_name));
    if !spec.model_files.is_empty() {
        layers.push(layer(&spec.model_files, spec.epoch)?);
        let names: Vec<&str> = spec.model_files.iter().map(|(p, _)| p.as_str()).collect();
        history.push(format!(
            "cargo xtask image build (model: {})",
            names.join(", ")
        ));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let mut labels = std::collections::HashMap::new();
    labels.extend(spec.labels.clone());
    let config = match variant(spec.arch.as_str()) {
        Some(v) => ImageConfigurationBuilder::default().variant(v),
        None => ImageConfigurationBuilder::default(),
    };
    let config = config
        .architecture(spec.arch.as_str())
        .os("linux")
        .created(spec.created.clone())
        .config(
            ConfigBuilder::default()
                .user(format!("{UID}:{UID}"))
                .exposed_ports(vec![format!("{}/tcp", spec.exposed_port)])
                .env(spec.env.clone())
                .entrypoint(vec![format!("/usr/local/bin/{}", spec.bin_name)])
                .working_dir("/")
                .labels(labels)
                .build()?,
        )
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids.clone())
                .build()?,
        )
        .history(
            history
                .into_iter()
                .map(|by| {
                    HistoryBuilder::default()
                        .created(spec.created.clone())
                        .created_by(by)
                        .build()
                })
                .collect::<std::result::Result<Vec<_>, _>>()?,
        )
        .build()?;
    let config = canonical_json(&config)?;
    let config_digest = sha256(&config);
    let sized: Vec<(String, usize)> = diff_ids
        .iter()
        .cloned()
        .zip(layers.iter().map(Vec::len))
        .collect();
    let manifest = manifest_from_digests((&config_digest, config.len()), &sized)?;
    Ok(Assembled {
        digest: sha256(&manifest),
        config_digest,
        layer_digests: diff_ids,
        config,
        layers,
        manifest,
    })
}

/// The OCI manifest for a config and uncompressed layers, canonical JSON.
pub fn manifest_for(config: &[u8], layers: &[Vec<u8>]) -> Result<Vec<u8>> {
    let layers: Vec<(String, usize)> = layers.iter().map(|l| (sha256(l), l.len())).collect();
    manifest_from_digests((&sha256(config), config.len()), &layers)
}

/// The manifest from digests and sizes already known (hashing tens of MB
/// once is enough).
fn manifest_from_digests(config: (&str, usize), layers: &[(String, usize)]) -> Result<Vec<u8>> {
    let layers = layers
        .iter()
        .map(|(digest, len)| {
            DescriptorBuilder::default()
                .media_type(MediaType::ImageLayer)
                .digest(digest.parse::<oci_spec::image::Digest>()?)
                .size(*len as u64)
                .build()
                .map_err(anyhow::Error::from)
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageConfig)
                .digest(config.0.parse::<oci_spec::image::Digest>()?)
                .size(config.1 as u64)
                .build()?,
        )
        .layers(layers)
        .build()?;
    canonical_json(&manifest)
}

/// A tar entry with everything but path, type, mode and contents fixed.
fn header(path: &str, size: u64, mode: u32, dir: bool, epoch: u64) -> Result<tar::Header> {
    let kind = if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    };
    typed_header(path, kind, size, mode, epoch)
}

fn typed_header(
    path: &str,
    kind: tar::EntryType,
    size: u64,
    mode: u32,
    epoch: u64,
) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .with_context(|| format!("tar path {path}"))?;
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_username("")?;
    h.set_groupname("")?;
    h.set_cksum();
    Ok(h)
}

/// The non-root user's passwd and group, and the binary (mode 0755).
pub fn system_files(bin_name: &str, binary: &[u8]) -> Vec<(String, Vec<u8>)> {
    let passwd = format!("nonroot:x:{UID}:{UID}:nonroot:/nonexistent:/sbin/nologin\n");
    let group = format!("nonroot:x:{UID}:\n");
    vec![
        ("etc/passwd".into(), passwd.into_bytes()),
        ("etc/group".into(), group.into_bytes()),
        (format!("usr/local/bin/{bin_name}"), binary.to_vec()),
    ]
}

/// A layer of `contents`: files under usr/local/bin/ are executable (0755),
/// the rest 0644; parent directories are added.
fn layer(contents: &[(String, Vec<u8>)], epoch: u64) -> Result<Vec<u8>> {
    let entries: Vec<Entry> = contents
        .iter()
        .map(|(path, bytes)| {
            let mode = if path.starts_with("usr/local/bin/") {
                0o755
            } else {
                0o644
            };
            Entry {
                path: path.clone(),
                contents: Contents::File(bytes.clone(), mode),
            }
        })
        .collect();
    layer_of(&entries, epoch)
}

/// A layer of `entries`, sorted by path, every parent directory (0755)
/// added before its contents, every time `epoch`.
fn layer_of(entries: &[Entry], epoch: u64) -> Result<Vec<u8>> {
    let mut files: BTreeMap<&str, &Contents> = BTreeMap::new();
    for e in entries {
        let path = e.path.as_str();
        if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
            bail!("image file path {path:?} must be relative and plain");
        }
        files.insert(path, &e.contents);
    }
    // Every parent directory, once, before its contents (sorted order does it).
    let mut dirs = std::collections::BTreeSet::new();
    for path in files.keys() {
        let parts: Vec<&str> = path.split('/').collect();
        let mut acc = String::new();
        for part in &parts[..parts.len() - 1] {
            acc.push_str(part);
            acc.push('/');
            dirs.insert(acc.clone());
        }
    }
    // A directory (None) or a file's contents, by path.
    let mut all: Vec<(String, Option<&Contents>)> = dirs.into_iter().map(|d| (d, None)).collect();
    all.extend(files.iter().map(|(p, c)| ((*p).to_string(), Some(*c))));
    all.sort_by(|a, b| a.0.cmp(&b.0));

    let mut tar = tar::Builder::new(Vec::new());
    for (path, contents) in all {
        match contents {
            None => tar.append(&header(&path, 0, 0o755, true, epoch)?, std::io::empty())?,
            Some(Contents::File(bytes, mode)) => tar.append(
                &header(&path, bytes.len() as u64, *mode, false, epoch)?,
                &bytes[..],
            )?,
            Some(Contents::Link(target)) => {
                let mut h = typed_header(&path, tar::EntryType::Symlink, 0, 0o777, epoch)?;
                h.set_link_name(target)
                    .with_context(|| format!("{path}: link target {target}"))?;
                h.set_cksum();
                tar.append(&h, std::io::empty())?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

#[derive(Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// Writes the image as one tarball: OCI layout plus docker-archive manifest.
pub fn write_archive(
    a: &Assembled,
    reference: &str,
    tag: &str,
    epoch: u64,
    path: &Path,
) -> Result<()> {
    let docker = vec![DockerArchiveEntry {
        config: blob_path(&a.config_digest),
        repo_tags: vec![reference.to_string()],
        layers: a.layer_digests.iter().map(|d| blob_path(d)).collect(),
    }];
    let top = (
        MediaType::ImageManifest,
        a.digest.as_str(),
        a.manifest.len(),
    );
    let mut files = layout_files(top, reference, tag)?;
    files.insert("manifest.json".into(), canonical_json(&docker)?);
    insert_image(&mut files, a);
    write_layout(&files, epoch, path)
}

/// The annotations that name an image layout's image: its tag (the OCI
/// layout's `ref.name`) and its whole reference (containerd's).
fn names(reference: &str, tag: &str) -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        (
            "org.opencontainers.image.ref.name".to_string(),
            tag.to_string(),
        ),
        (
            "io.containerd.image.name".to_string(),
            reference.to_string(),
        ),
    ])
}

/// `oci-layout` and `index.json` of an image layout holding one image or
/// image index, `top`: its media type, digest and size, named `reference`
/// (tag `tag`).
fn layout_files(
    (media_type, digest, size): (MediaType, &str, usize),
    reference: &str,
    tag: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![
            DescriptorBuilder::default()
                .media_type(media_type)
                .digest(digest.parse::<oci_spec::image::Digest>()?)
                .size(size as u64)
                .annotations(names(reference, tag))
                .build()?,
        ])
        .build()?;
    let mut files = BTreeMap::new();
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    files.insert("index.json".into(), canonical_json(&index)?);
    Ok(files)
}

/// `a`'s config, layers and manifest, as blobs of an image layout.
fn insert_image(files: &mut BTreeMap<String, Vec<u8>>, a: &Assembled) {
    files.insert(blob_path(&a.config_digest), a.config.clone());
    for (digest, layer) in a.layer_digests.iter().zip(&a.layers) {
        files.insert(blob_path(digest), layer.clone());
    }
    files.insert(blob_path(&a.digest), a.manifest.clone());
}

/// Writes `files` as one tarball, every header fixed but path, size and
/// contents.
fn write_layout(files: &BTreeMap<String, Vec<u8>>, epoch: u64, path: &Path) -> Result<()> {
    // Written whole: two builds at once (two shells, a deploy beside an
    // `image push`) each leave a whole archive, and a reader keeps the file
    // it opened.
    files::write_whole_with(path, 0o644, |out| {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        for dir in ["blobs/", "blobs/sha256/"] {
            tar.append(&header(dir, 0, 0o755, true, epoch)?, std::io::empty())?;
        }
        for (name, bytes) in files {
            tar.append(
                &header(name, bytes.len() as u64, 0o644, false, epoch)?,
                &bytes[..],
            )?;
        }
        tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })
}

/// The media type of an OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI image index (image-spec v1.1, image-index.md): one manifest per
/// platform, each with its `platform` (`os` linux, `architecture` the OCI
/// name), in the order given; canonical JSON, so the same images give the
/// same digest.
pub struct Index {
    pub bytes: Vec<u8>,
    /// `sha256:...` of `bytes`: the digest a registry reports for the tag.
    pub digest: String,
}

/// The CPU variant OCI's platform table gives `arch` (image-spec v1.1,
/// image-index.md: `arm64` is `v8`), as `docker buildx` and ko write it
/// in indexes and configs; none for `amd64`.
fn variant(arch: &str) -> Option<&'static str> {
    (arch == "arm64").then_some("v8")
}

/// The index over `images`: (OCI architecture name, image) pairs.
///
/// # Errors
/// Two images of one architecture; a digest oci-spec refuses.
pub fn index(images: &[(&str, &Assembled)]) -> Result<Index> {
    let mut manifests = Vec::new();
    for (i, (arch, image)) in images.iter().enumerate() {
        if images[..i].iter().any(|(a, _)| a == arch) {
            bail!("an image index holds one image per platform; linux/{arch} came twice");
        }
        manifests.push(
            DescriptorBuilder::default()
                .media_type(MediaType::ImageManifest)
                .digest(image.digest.parse::<oci_spec::image::Digest>()?)
                .size(image.manifest.len() as u64)
                .platform({
                    let platform = match variant(arch) {
                        Some(v) => PlatformBuilder::default().variant(v),
                        None => PlatformBuilder::default(),
                    };
                    platform.architecture(*arch).os("linux").build()?
                })
                .build()?,
        );
    }
    let index = ImageIndexBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()?;
    let bytes = canonical_json(&index)?;
    Ok(Index {
        digest: sha256(&bytes),
        bytes,
    })
}

/// Writes `index` and its `images` as one OCI image layout tarball whose
/// `index.json` names the index `reference` (tag `tag`). Blobs the images
/// share (a model's layer) are stored once.
///
/// # Errors
/// The file cannot be written.
pub fn write_index_archive(
    images: &[&Assembled],
    index: &Index,
    reference: &str,
    tag: &str,
    epoch: u64,
    path: &Path,
) -> Result<()> {
    let top = (
        MediaType::ImageIndex,
        index.digest.as_str(),
        index.bytes.len(),
    );
    let mut files = layout_files(top, reference, tag)?;
    for a in images {
        insert_image(&mut files, a);
    }
    files.insert(blob_path(&index.digest), index.bytes.clone());
    write_layout(&files, epoch, path)
}

/// One platform's image read back from an index archive.
pub struct IndexedImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

/// An index archive's index and images, in the index's order.
pub struct IndexBlobs {
    pub index: Vec<u8>,
    pub images: Vec<IndexedImage>,
}

/// The index an archive holds, when its `index.json` names an image index
/// (`write_index_archive`'s); None for a one-platform image archive.
///
/// # Errors
/// Not an image layout; a blob it names is missing.
pub fn read_index_archive(path: &Path) -> Result<Option<IndexBlobs>> {
    let files = tar_files(path)?;
    let Some(layout) = files.get("index.json") else {
        return Ok(None);
    };
    let layout: ImageIndex = serde_json::from_slice(layout)
        .with_context(|| format!("{}: index.json is not an OCI image index", path.display()))?;
    let [top] = layout.manifests().as_slice() else {
        return Ok(None);
    };
    if *top.media_type() != MediaType::ImageIndex {
        return Ok(None);
    }
    let take = |d: &Descriptor| {
        let name = blob_path(d.digest().as_ref());
        files
            .get(&name)
            .cloned()
            .with_context(|| format!("{} lacks {name}", path.display()))
    };
    let index = take(top)?;
    let parsed: ImageIndex = serde_json::from_slice(&index)?;
    let images = parsed
        .manifests()
        .iter()
        .map(|d| {
            let manifest = take(d)?;
            let m: ImageManifest = serde_json::from_slice(&manifest)?;
            Ok(IndexedImage {
                config: take(m.config())?,
                layers: m.layers().iter().map(&take).collect::<Result<_>>()?,
                manifest,
            })
        })
        .collect::<Result<_>>()?;
    Ok(Some(IndexBlobs { index, images }))
}

/// Every regular file of a tarball, by path (`./` dropped).
fn tar_files(path: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot open image archive {}", path.display()))?;
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in tar::Archive::new(file).entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let name = entry
                .path()?
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes)?;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// The config and layers of an image archive, read through its
/// docker-archive manifest (ours, or one `docker save` wrote).
pub struct ArchiveBlobs {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

pub fn read_archive(path: &Path) -> Result<ArchiveBlobs> {
    let files = tar_files(path)?;
    let manifest = files.get("manifest.json").with_context(|| {
        format!(
            "{} has no manifest.json: not an image archive",
            path.display()
        )
    })?;
    let entries: Vec<DockerArchiveEntry> = serde_json::from_slice(manifest)?;
    let [entry] = entries.as_slice() else {
        bail!(
            "{} holds {} images; expected one",
            path.display(),
            entries.len()
        );
    };
    let take = |name: &str| {
        files
            .get(name)
            .cloned()
            .with_context(|| format!("{} lacks {name}", path.display()))
    };
    Ok(ArchiveBlobs {
        config: take(&entry.config)?,
        layers: entry
            .layers
            .iter()
            .map(|l| take(l))
            .collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(binary: &[u8]) -> ImageSpec {
        ImageSpec {
            base_layers: Vec::new(),
            bin_name: "svc".into(),
            binary: binary.to_vec(),
            files: vec![("models/m.onnx".into(), b"onnx".to_vec())],
            model_files: Vec::new(),
            exposed_port: 5000,
            env: vec!["PATH=/usr/local/bin".into()],
            labels: BTreeMap::from([("org.opencontainers.image.version".into(), "1".into())]),
            arch: "amd64".into(),
            created: "2023-11-14T22:13:20Z".into(),
            epoch: 1_700_000_000,
        }
    }

    #[test]
    fn a_base_goes_under_the_binary_with_its_links_and_the_epoch_zero() -> Result<()> {
        let base = vec![(
            "libc6=2.36".to_string(),
            vec![
                Entry {
                    path: "lib/x86_64-linux-gnu/libc.so.6".into(),
                    contents: Contents::File(b"libc".to_vec(), 0o644),
                },
                Entry {
                    path: "lib64/ld-linux-x86-64.so.2".into(),
                    contents: Contents::Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into()),
                },
            ],
        )];
        let on_base = |binary: &[u8], epoch| {
            assemble(&ImageSpec {
                base_layers: base.clone(),
                epoch,
                ..spec(binary)
            })
        };
        let (a, b) = (on_base(b"one", 1)?, on_base(b"two", 2)?);
        assert_eq!(a.layers.len(), 2);
        // The same base layer under two binaries and two epochs.
        assert_eq!(a.layer_digests[0], b.layer_digests[0]);
        assert_ne!(a.layer_digests[1], b.layer_digests[1]);
        assert_eq!(on_base(b"one", 1)?.digest, a.digest);
        let mut tar = tar::Archive::new(&a.layers[0][..]);
        let mut seen = Vec::new();
        for entry in tar.entries()? {
            let entry = entry?;
            let h = entry.header();
            assert_eq!(h.mtime()?, 0);
            let link = entry.link_name()?.map(|l| l.display().to_string());
            seen.push((entry.path()?.display().to_string(), h.entry_type(), link));
        }
        assert_eq!(
            seen,
            [
                ("lib/".into(), tar::EntryType::Directory, None),
                (
                    "lib/x86_64-linux-gnu/".into(),
                    tar::EntryType::Directory,
                    None
                ),
                (
                    "lib/x86_64-linux-gnu/libc.so.6".into(),
                    tar::EntryType::Regular,
                    None
                ),
                ("lib64/".into(), tar::EntryType::Directory, None),
                (
                    "lib64/ld-linux-x86-64.so.2".into(),
                    tar::EntryType::Symlink,
                    Some("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into())
                ),
            ]
        );
        let config: serde_json::Value = serde_json::from_slice(&a.config)?;
        assert_eq!(
            config["history"][0]["created_by"],
            "cargo xtask image build (base: libc6=2.36)"
        );
        Ok(())
    }

    #[test]
    fn same_inputs_same_digest_and_different_inputs_differ() -> Result<()> {
        let a = assemble(&spec(b"binary"))?;
        let b = assemble(&spec(b"binary"))?;
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.manifest, b.manifest);
        let c = assemble(&spec(b"binarx"))?;
        assert_ne!(a.digest, c.digest);
        Ok(())
    }

    #[test]
    fn the_layer_holds_a_non_root_user_and_fixed_metadata() -> Result<()> {
        let a = assemble(&spec(b"\x7fELF"))?;
        let mut seen = Vec::new();
        assert_eq!(a.layers.len(), 1);
        for e in tar::Archive::new(&a.layers[0][..]).entries()? {
            let e = e?;
            let h = e.header();
            assert_eq!((h.uid()?, h.gid()?, h.mtime()?), (0, 0, 1_700_000_000));
            seen.push((e.path()?.to_string_lossy().into_owned(), h.mode()?));
        }
        let names: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/group",
                "etc/passwd",
                "models/",
                "models/m.onnx",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/svc"
            ]
        );
        assert_eq!(seen.last().map(|s| s.1), Some(0o755));
        let config: serde_json::Value = serde_json::from_slice(&a.config)?;
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/svc"])
        );
        assert_eq!(config["rootfs"]["diff_ids"][0], sha256(&a.layers[0]));
        Ok(())
    }

    #[test]
    fn archives_round_trip() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let a = assemble(&spec(b"x"))?;
        let path = dir.path().join("img.tar");
        write_archive(&a, "reg/acct/svc:1", "1", 1_700_000_000, &path)?;
        let first = std::fs::read(&path)?;
        write_archive(&a, "reg/acct/svc:1", "1", 1_700_000_000, &path)?;
        assert_eq!(first, std::fs::read(&path)?, "byte-identical archives");
        let blobs = read_archive(&path)?;
        assert_eq!(blobs.config, a.config);
        assert_eq!(blobs.layers, a.layers);
        assert_eq!(manifest_for(&blobs.config, &blobs.layers)?, a.manifest);
        Ok(())
    }

    #[test]
    fn a_model_is_a_layer_of_its_own_over_the_same_base() -> Result<()> {
        let mut one = spec(b"server");
        one.files.clear();
        one.model_files = vec![("models/wine.onnx".into(), b"wine".to_vec())];
        let mut two = spec(b"server");
        two.files.clear();
        two.model_files = vec![("models/iris.onnx".into(), b"iris".to_vec())];
        let (one, two) = (assemble(&one)?, assemble(&two)?);
        assert_eq!(one.layers.len(), 2);
        assert_eq!(
            one.layer_digests[0], two.layer_digests[0],
            "one server layer"
        );
        assert_ne!(one.layer_digests[1], two.layer_digests[1]);
        let names: Vec<String> = tar::Archive::new(&one.layers[1][..])
            .entries()?
            .map(|e| Ok(e?.path()?.to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        assert_eq!(names, ["models/", "models/wine.onnx"]);
        let config: serde_json::Value = serde_json::from_slice(&one.config)?;
        assert_eq!(
            config["rootfs"]["diff_ids"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(config["history"].as_array().map(Vec::len), Some(2));
        let again = assemble(&{
            let mut s = spec(b"server");
            s.files.clear();
            s.model_files = vec![("models/wine.onnx".into(), b"wine".to_vec())];
            s
        })?;
        assert_eq!(again.digest, one.digest, "reproducible");
        Ok(())
    }

    #[test]
    fn an_index_names_each_platform_shares_the_model_layer_and_is_reproducible() -> Result<()> {
        let image = |binary: &[u8], arch: &str| {
            assemble(&ImageSpec {
                files: Vec::new(),
                model_files: vec![("models/iris.onnx".into(), b"iris".to_vec())],
                arch: arch.into(),
                ..spec(binary)
            })
        };
        let (amd, arm) = (image(b"x86-64", "amd64")?, image(b"aarch64", "arm64")?);
        let made = index(&[("amd64", &amd), ("arm64", &arm)])?;
        assert_eq!(made.digest, sha256(&made.bytes));
        let again = index(&[
            ("amd64", &image(b"x86-64", "amd64")?),
            ("arm64", &image(b"aarch64", "arm64")?),
        ])?;
        assert_eq!(again.digest, made.digest, "reproducible");
        let parsed: serde_json::Value = serde_json::from_slice(&made.bytes)?;
        assert_eq!(parsed["mediaType"], OCI_INDEX);
        let field =
            |m: &serde_json::Value, k: &str| m["platform"][k].as_str().map(ToString::to_string);
        let platforms: Vec<_> = parsed["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                (
                    m["digest"].as_str().unwrap_or_default().to_string(),
                    field(m, "os"),
                    field(m, "architecture"),
                    field(m, "variant"),
                )
            })
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            platforms,
            [
                (amd.digest.clone(), some("linux"), some("amd64"), None),
                (arm.digest.clone(), some("linux"), some("arm64"), some("v8")),
            ]
        );
        let config: serde_json::Value = serde_json::from_slice(&arm.config)?;
        assert_eq!(config["variant"], "v8", "the config says it too");
        assert_eq!(
            amd.layer_digests[1], arm.layer_digests[1],
            "one model layer"
        );
        assert_ne!(amd.layer_digests[0], arm.layer_digests[0]);
        let err = index(&[("amd64", &amd), ("amd64", &amd)]).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("linux/amd64 came twice")),
            "a platform twice is refused"
        );

        // Written, read back: the index and each image, blobs shared once.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("index.tar");
        write_index_archive(&[&amd, &arm], &made, "reg/acct/iris:1", "1", 1, &path)?;
        let first = std::fs::read(&path)?;
        write_index_archive(&[&amd, &arm], &made, "reg/acct/iris:1", "1", 1, &path)?;
        assert_eq!(first, std::fs::read(&path)?, "byte-identical archives");
        let back = read_index_archive(&path)?.context("no index read back")?;
        assert_eq!(back.index, made.bytes);
        assert_eq!(back.images.len(), 2);
        assert_eq!(back.images[1].manifest, arm.manifest);
        assert_eq!(back.images[1].config, arm.config);
        assert_eq!(back.images[1].layers, arm.layers);
        // A one-platform archive is not an index.
        write_archive(&amd, "reg/acct/iris:1", "1", 1, &path)?;
        assert!(read_index_archive(&path)?.is_none());
        Ok(())
    }

    #[test]
    fn escaping_paths_are_refused() {
        let mut s = spec(b"x");
        s.files.push(("../etc/shadow".into(), vec![]));
        assert!(assemble(&s).is_err());
    }
}
