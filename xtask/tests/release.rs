//! `cargo xtask release` against the real loopback registry, checked with
//! skopeo and, for signatures, attestations and the SBOM's schema, with
//! Python's `cryptography` and `cyclonedx-python-lib` (not our code), in a
//! scratch git repository made from the workspace. Preflight refusals come
//! first; they build nothing.
//!
//! Needs KMLOPS_TEST_REGISTRY (`.ci/container-stack.sh`), skopeo, and
//! KMLOPS_PYTHON (a Python with those packages; `.ci/run` makes one). In CI
//! a missing one fails the test; elsewhere it is skipped with the reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Result, copy_workspace, target_dir, text};

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn needed(var: &str) -> Option<String> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        let why = format!("{var} is not set (`.ci/run` sets it up)");
        assert!(std::env::var_os("CI").is_none(), "CI needs {why}");
        eprintln!("SKIPPED: {why}");
    }
    v
}

impl Repo {
    /// A git repository holding the workspace, with only test-api as a
    /// service (one image keeps the double build short) and a changelog.
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root)?;
        copy_workspace(&root)?;
        let repo_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for dir in ["deploy/base", "deploy/components", "deploy/seldon"] {
            support::copy_tree(&repo_root.join(dir), &root.join(dir))?;
        }
        std::fs::write(
            root.join("xtask.toml"),
            "[services.test-api]\nport = 5000\nsmoke = \"tutorial-greeting\"\nseldon = false\n\
             [services.model-server]\nport = 5001\n\
             [images]\ndir = \"target-images\"\n",
        )?;
        std::fs::write(root.join(".gitignore"), "target-images/\n")?;
        std::fs::write(
            root.join("CHANGELOG.md"),
            "# Changelog\n\n## [Unreleased]\n\n## [0.1.0] - 2026-11-30\n### Added\n- The first release.\n",
        )?;
        let repo = Self { _dir: dir, root };
        repo.git(&["init", "--quiet", "--initial-branch=main"])?;
        repo.commit("the workspace")?;
        Ok(repo)
    }

    fn git(&self, args: &[&str]) -> Result<Output> {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&self.root)
            .output()?;
        if !out.status.success() {
            return Err(format!("git {args:?}: {}", text(&out.stderr)).into());
        }
        Ok(out)
    }

    fn commit(&self, message: &str) -> Result {
        self.git(&["add", "--all"])?;
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message])?;
        Ok(())
    }

    fn xtask(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(self.root.join("xtask.toml"))
            .arg("--progress=never")
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", target_dir())
            // `dist` without its whole-program LTO and with parallel
            // codegen, through cargo's own overrides: this test links
            // test-api five times (two builds, two after the timestamp
            // edit, the rebuild of `image verify`), at over 20 s a link
            // with fat LTO on 2 cores. The release steps, the digests'
            // comparison and the provenance are the same either way;
            // reproducibility holds for each setting of the profile.
            .env("CARGO_PROFILE_DIST_LTO", "off")
            .env("CARGO_PROFILE_DIST_CODEGEN_UNITS", "16")
            .env_remove("KMLOPS_SIGN_KEY")
            .output()?)
    }
}

/// The SBOM's components as `name vVERSION`.
fn sbom_components(file: &Path) -> Result<Vec<String>> {
    let sbom: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    Ok(sbom["components"]
        .as_array()
        .ok_or("components")?
        .iter()
        .map(|c| {
            format!(
                "{} v{}",
                c["name"].as_str().unwrap_or(""),
                c["version"].as_str().unwrap_or("")
            )
        })
        .collect())
}

/// `cargo tree` (normal edges, no proc-macros, the static target) for
/// `select` in `root`: each crate as `name vVERSION`.
fn tree_crates(root: &Path, select: &[&str]) -> Result<Vec<String>> {
    let tree = Command::new("cargo")
        .arg("tree")
        .args(select)
        .args(["-e", "normal,no-proc-macro", "--prefix", "none"])
        .args(["--format", "{p}", "--target", "x86_64-unknown-linux-gnu"])
        .current_dir(root)
        .output()?;
    Ok(text(&tree.stdout)
        .lines()
        .map(|line| {
            line.trim_end_matches(" (*)")
                .split(" (")
                .next()
                .unwrap_or(line)
                .to_string()
        })
        .collect())
}

fn refused(out: &Output, because: &str) {
    assert!(
        !out.status.success() && text(&out.stderr).contains(because),
        "expected a refusal naming {because:?}:\n{}",
        text(&out.stderr)
    );
}

fn skopeo(args: &[&str]) -> Result<String> {
    let out = Command::new("skopeo").args(args).output()?;
    if !out.status.success() {
        return Err(format!("skopeo {args:?}: {}", text(&out.stderr)).into());
    }
    Ok(text(&out.stdout))
}

fn digest_of(reference: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ])?)?;
    Ok(v["Digest"].as_str().ok_or("no Digest")?.to_string())
}

fn copy_artifact(reference: &str, to: &Path) -> Result {
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("dir:{}", to.display()),
    ])?;
    Ok(())
}

#[test]
fn a_release_is_pushed_tagged_signed_attested_and_refused_when_not_reproducible() -> Result {
    let (Some(registry), Some(python)) = (needed("KMLOPS_TEST_REGISTRY"), needed("KMLOPS_PYTHON"))
    else {
        return Ok(());
    };
    let repo = Repo::new()?;
    let base = format!("{registry}/kmlops-release-{}", std::process::id());
    let key = repo.root.join("../release.key");
    let key_arg = key.to_string_lossy().into_owned();

    // keygen: a pair, the private key 0600, never overwritten.
    let out = repo.xtask(&["release", "keygen", "--key", &key_arg])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key)?.permissions().mode() & 0o777, 0o600);
    refused(
        &repo.xtask(&["release", "keygen", "--key", &key_arg])?,
        "exists",
    );

    let release = |extra: &[&str]| -> Result<Output> {
        let mut args = vec![
            "release",
            "--registry",
            &base,
            "--insecure",
            "--sign-key",
            &key_arg,
        ];
        args.extend_from_slice(extra);
        repo.xtask(&args)
    };

    // Preflight refusals, each before anything is built.
    std::fs::write(repo.root.join("stray.txt"), "x")?;
    refused(&release(&["--version", "0.1.0"])?, "uncommitted changes");
    // A dry run lists every problem first, and plans on.
    let out = release(&["--version", "0.2.0", "--dry-run"])?;
    let plan = text(&out.stdout);
    assert!(out.status.success(), "{plan}{}", text(&out.stderr));
    for problem in [
        "uncommitted changes",
        "Cargo.toml's workspace version is 0.1.0, not 0.2.0",
        "has no `## [0.2.0] - YYYY-MM-DD` section",
    ] {
        assert!(plan.contains(problem), "{problem}: {plan}");
    }
    assert!(
        plan.starts_with("A real run would stop here first"),
        "{plan}"
    );
    assert!(!plan.contains("CHANGELOG section found"), "{plan}");
    std::fs::remove_file(repo.root.join("stray.txt"))?;
    refused(
        &release(&["--version", "0.2.0"])?,
        "Cargo.toml's workspace version is 0.1.0",
    );
    refused(&release(&["--version", "one"])?, "not a semantic version");
    repo.git(&["tag", "v0.1.0"])?;
    repo.commit("after the tag")?; // v0.1.0 on HEAD would be a tag-push job's release
    refused(
        &release(&["--version", "0.1.0"])?,
        "not greater than the last release tag v0.1.0",
    );
    repo.git(&["tag", "--delete", "v0.1.0"])?;
    let log = std::fs::read_to_string(repo.root.join("CHANGELOG.md"))?;
    std::fs::write(repo.root.join("CHANGELOG.md"), "# Changelog\n")?;
    repo.commit("no notes")?;
    refused(&release(&["--version", "0.1.0"])?, "has no `## [0.1.0]");
    std::fs::write(repo.root.join("CHANGELOG.md"), &log)?;
    repo.commit("notes")?;
    refused(
        &repo.xtask(&[
            "release",
            "--version",
            "0.1.0",
            "--registry",
            &base,
            "--insecure",
        ])?,
        "no signing key",
    );
    refused(
        &repo.xtask(&[
            "release",
            "--version",
            "0.1.0",
            "--registry",
            "127.0.0.1:9/nobody",
            "--insecure",
            "--sign-key",
            &key_arg,
        ])?,
        "cannot authenticate to 127.0.0.1:9",
    );

    // The release.
    let result = repo.root.join("../build.json");
    let out = release(&[
        "--version",
        "0.1.0",
        "--file-output",
        &result.to_string_lossy(),
        "--output",
        "json",
    ])?;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reproduced"),
        "built twice and compared:\n{stderr}"
    );
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&result)?)?;
    let build = &file["builds"][0];
    assert_eq!(build["imageName"], "test-api");
    let digest = build["digest"].as_str().ok_or("digest")?.to_string();
    assert!(
        build["tag"]
            .as_str()
            .is_some_and(|t| t.ends_with(&format!("@{digest}")))
    );
    // --output json: stdout is one document, --file-output's and the version.
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout))?;
    assert_eq!(doc["builds"], file["builds"], "{doc}");
    assert_eq!(doc["version"], "0.1.0");
    let sha = text(&repo.git(&["rev-parse", "--short=7", "HEAD"])?.stdout)
        .trim()
        .to_string();
    for tag in ["v0.1.0", "0.1", &format!("0.1.0-{sha}")] {
        assert_eq!(
            digest_of(&format!("{base}/test-api:{tag}"))?,
            digest,
            "tag {tag}"
        );
    }
    // The annotated tag, with the notes.
    let tag = text(&repo.git(&["tag", "-n9", "v0.1.0"])?.stdout);
    assert!(tag.contains("The first release."), "{tag}");

    // Files: hydrated manifests pinned by digest, SBOM, provenance, sums.
    let out_dir = target_dir().join("release/v0.1.0");
    let kind = std::fs::read_to_string(out_dir.join("manifests/kind.yaml"))?;
    assert!(
        kind.contains(&format!("image: {base}/test-api@{digest}")),
        "{kind}"
    );
    // `render` from the --file-output document gives the same manifests.
    let out = repo.xtask(&[
        "render",
        "--target",
        "kind",
        "--images",
        &result.to_string_lossy(),
    ])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        kind,
        "render = the release's hydrated manifest"
    );
    refused(
        &repo.xtask(&[
            "render",
            "--target",
            "local",
            "--images",
            &result.to_string_lossy(),
        ])?,
        "applies no manifests",
    );
    std::fs::write(
        repo.root.join("../unpinned.json"),
        r#"{"builds":[{"imageName":"test-api","tag":"r/test-api:1"}]}"#,
    )?;
    refused(
        &repo.xtask(&[
            "render",
            "--target",
            "kind",
            "--images",
            &repo.root.join("../unpinned.json").to_string_lossy(),
        ])?,
        "not pinned by digest",
    );
    // The Seldon resources are hydrated too (test-api is not among them).
    let seldon = std::fs::read_to_string(out_dir.join("manifests/seldon.yaml"))?;
    assert!(seldon.contains("kind: SeldonDeployment"), "{seldon}");
    let sums = std::fs::read_to_string(out_dir.join("SHA256SUMS"))?;
    for f in [
        "manifests/kind.yaml",
        "manifests/seldon.yaml",
        "test-api.cdx.json",
        "test-api.provenance.json",
        "RELEASE_NOTES.md",
    ] {
        assert!(
            sums.contains(&format!("  {f}\n")),
            "{f} in SHA256SUMS:\n{sums}"
        );
    }
    let provenance: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        out_dir.join("test-api.provenance.json"),
    )?)?;
    let full = text(&repo.git(&["rev-parse", "HEAD"])?.stdout)
        .trim()
        .to_string();
    let params = &provenance["predicate"]["buildDefinition"];
    assert_eq!(
        params["externalParameters"]["source"]["digest"]["gitCommit"],
        full
    );
    assert_eq!(params["externalParameters"]["profile"], "dist");
    let build = params["externalParameters"]["buildCommand"]
        .as_str()
        .ok_or("buildCommand")?;
    assert!(
        build.starts_with("cargo build --profile dist") && build.contains("--no-default-features"),
        "{build}"
    );
    let command = params["externalParameters"]["command"]
        .as_str()
        .ok_or("command")?;
    assert!(
        command.contains("--sign-key <key>") && !command.contains(&key_arg),
        "{command}"
    );
    assert!(
        params["internalParameters"]["rustc"]
            .as_str()
            .is_some_and(|r| r.contains("host:"))
    );

    // The SBOM: every crate `cargo tree` compiles into test-api, no
    // dev-dependency, with checksums.
    let names = sbom_components(&out_dir.join("test-api.cdx.json"))?;
    for crate_ in tree_crates(&repo.root, &["-p", "test-api"])? {
        assert!(names.contains(&crate_), "{crate_} is in the SBOM");
    }
    assert!(
        !names.iter().any(|n| n.starts_with("tempfile ")),
        "no dev-dependency"
    );
    assert!(
        names.iter().any(|n| n.starts_with("/etc/passwd ")),
        "passwd listed"
    );
    // The second image's SBOM has its own whole graph (crates it shares
    // with test-api included), and no ONNX runtime: the identity model's
    // server is built without it, and the SBOM follows the build.
    let server = sbom_components(&out_dir.join("model-server.cdx.json"))?;
    let mut shared = 0;
    for crate_ in tree_crates(&repo.root, &["-p", "model-server", "--no-default-features"])? {
        assert!(
            server.contains(&crate_),
            "{crate_} is in model-server's SBOM"
        );
        shared += usize::from(names.contains(&crate_));
    }
    assert!(
        shared > 10,
        "crates shared with test-api are listed: {shared}"
    );
    assert!(
        !server.iter().any(|n| n.starts_with("tract-")),
        "no ONNX runtime in the identity model's server"
    );

    // Signature and attestations, verified by Python's cryptography.
    let scratch = tempfile::tempdir()?;
    let (sig, att) = (scratch.path().join("sig"), scratch.path().join("att"));
    let hex = digest.trim_start_matches("sha256:");
    copy_artifact(&format!("{base}/test-api:sha256-{hex}.sig"), &sig)?;
    copy_artifact(&format!("{base}/test-api:sha256-{hex}.att"), &att)?;
    let public = out_dir.join("cosign.pub");
    let helper = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/helpers/verify_release.py"
    );
    let check = |extra: &[&str]| -> Result<Output> {
        Ok(Command::new(&python)
            .arg(helper)
            .arg(&public)
            .arg(&sig)
            .arg(&att)
            .arg(&digest)
            .args(extra)
            .output()?)
    };
    let ok = check(&[])?;
    assert!(
        ok.status.success(),
        "{}{}",
        text(&ok.stdout),
        text(&ok.stderr)
    );
    assert!(text(&ok.stdout).contains("CycloneDX 1.5 JSON schema"));
    for tamper in ["payload", "digest"] {
        let bad = check(&["--tamper", tamper])?;
        assert!(
            !bad.status.success(),
            "a changed {tamper} must not verify: {}",
            text(&bad.stdout)
        );
    }

    // image verify: the signature and attestations with the public key,
    // then a rebuild from the commit the provenance names, same digest.
    let public_arg = public.to_string_lossy().into_owned();
    let reference = format!("{base}/test-api:v0.1.0");
    let out = repo.xtask(&[
        "image",
        "verify",
        &reference,
        "--key",
        &public_arg,
        "--insecure",
    ])?;
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains(&digest), "{said}");
    assert!(said.contains("the same digest, byte for byte"), "{said}");
    // Another key: refused.
    let other = repo.root.join("../other.key");
    let out = repo.xtask(&["release", "keygen", "--key", &other.to_string_lossy()])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        &repo.xtask(&[
            "image",
            "verify",
            &reference,
            "--key",
            &format!("{}.pub", other.display()),
            "--insecure",
            "--no-rebuild",
        ])?,
        "does not verify with this key",
    );

    // A build that embeds the time: refused.
    std::fs::write(
        repo.root.join("services/test-api/build.rs"),
        "fn main() { let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos(); println!(\"cargo:rustc-env=BUILT_AT={t}\"); }\n",
    )?;
    let main_rs = repo.root.join("services/test-api/src/main.rs");
    let main = std::fs::read_to_string(&main_rs)?;
    std::fs::write(
        &main_rs,
        main.replacen(
            "fn main()",
            "static BUILT_AT: &str = env!(\"BUILT_AT\");\nfn main()",
            1,
        )
        .replacen("{\n", "{\n    std::hint::black_box(BUILT_AT);\n", 1),
    )?;
    let out = repo.xtask(&["release", "bump", "patch"])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(
        repo.root.join("CHANGELOG.md"),
        log.replace(
            "## [Unreleased]\n",
            "## [Unreleased]\n\n## [0.1.1] - 2026-11-30\n- The time.\n",
        ),
    )?;
    repo.commit("embed the build time")?;
    let out = release(&["--version", "0.1.1", "--no-tag", "--output", "json"])?;
    refused(&out, "not reproducible");
    // A failure under --output json is a document too.
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout))?;
    assert!(
        doc["error"]
            .as_str()
            .is_some_and(|e| e.contains("not reproducible")),
        "{doc}"
    );
    Ok(())
}
