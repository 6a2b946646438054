//! Linux binaries of another platform than the host's (issue 23): the
//! xtask driving `cargo zigbuild` for real, for a glibc-versioned triple
//! of this host's CPU (`x86_64-unknown-linux-gnu.2.17`, whose std this
//! toolchain has), and
//! a platform this host cannot build saying exactly what to install; and
//! an image index of two platforms (this host's, and arm64's through a
//! stand-in for `cross`) pushed to the loopback registry and read back
//! with skopeo.
//! cargo-zigbuild and zig come from PyPI (`.ci/requirements.txt`, in the
//! virtual environment `KMLOPS_PYTHON` names).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod support;

use support::{Result, text};

/// The directory with cargo-zigbuild and PyPI's zig (the CI virtual
/// environment's bin/), or None outside CI when there is none (the test
/// then says it skips; CI fails instead).
fn zig_tools() -> Option<PathBuf> {
    let dir = std::env::var_os("KMLOPS_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("cargo-zigbuild").is_file());
    if dir.is_none() {
        let why = "no cargo-zigbuild beside KMLOPS_PYTHON (pip install -r .ci/requirements.txt)";
        assert!(std::env::var_os("CI").is_none(), "CI needs it: {why}");
        eprintln!("SKIPPED: {why}");
    }
    dir
}

/// The xtask with only test-api in its settings, `tools` first on the
/// PATH, building in `target` (a directory of this test's own: the
/// zigbuild directory under it starts cold, and at opt-level 0 it builds
/// in a fraction of the release profile's time; what is tested is the
/// toolchain, not the code's speed).
fn xtask(dir: &Path, tools: &Path, target: &Path, args: &[&str]) -> Result<Output> {
    std::fs::write(dir.join("xtask.toml"), "[services.test-api]\n")?;
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(dir.join("xtask.toml"))
        .arg("--progress=never")
        .args(args)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target)
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "0")
        .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "64")
        .stdin(std::process::Stdio::null())
        .output()?)
}

#[test]
fn zigbuild_makes_a_glibc_2_17_binary_that_passes_the_elf_check_and_answers() -> Result {
    let Some(tools) = zig_tools() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let target = support::target_dir().join("cross-build-test");
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &[
            "build",
            "test-api",
            "--toolchain",
            "zigbuild",
            "--glibc",
            "2.17",
        ],
    )?;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "zigbuild --profile release --target {}-unknown-linux-gnu.2.17",
            std::env::consts::ARCH
        )),
        "{stderr}"
    );
    let binary = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test-api\t"))
        .map(PathBuf::from)
        .ok_or_else(|| format!("no test-api line in {stdout}"))?;
    assert!(
        binary.starts_with(target.join(format!(
            "zigbuild/{}-unknown-linux-gnu/release",
            std::env::consts::ARCH
        ))),
        "{}",
        binary.display()
    );

    // Linked against glibc 2.17's symbols at the newest, as the triple
    // asked: the version names are in the binary's dynamic string table.
    let bytes = std::fs::read(&binary)?;
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("GLIBC_2.17\0"), "no GLIBC_2.17 symbol version");
    for newer in 18..=45 {
        assert!(!has(&format!("GLIBC_2.{newer}\0")), "needs GLIBC_2.{newer}");
    }

    // Linked against glibc, it cannot go into an image on an empty base:
    // image build says so before building (the ELF check of a dynamically
    // linked binary, `platform::check_static`, is a unit test).
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &[
            "image",
            "build",
            "--toolchain",
            "zigbuild",
            "--glibc",
            "2.17",
        ],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cargo zigbuild --target {}-unknown-linux-gnu.2.17 links glibc dynamically, and \
             images run on an empty base",
            std::env::consts::ARCH
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("==> building"),
        "nothing is built: {stderr}"
    );

    // And it answers, here (this host's glibc is newer than 2.17).
    let port = support::free_port()?;
    let mut child = Command::new(&binary)
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/test_api");
    let mut answer = Err("not tried".to_string());
    for _ in 0..100 {
        answer = support::get(&url).map_err(|e| e.to_string());
        if answer.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let answer: serde_json::Value = serde_json::from_str(&answer?)?;
    assert_eq!(
        answer["message"], "Hello 127.0.0.1, you've reached 127.0.0.1",
        "{answer}"
    );
    Ok(())
}

#[test]
fn a_platform_this_host_cannot_build_says_what_to_install() -> Result {
    // Only this host's own std is installed here: arm64's musl one is not.
    let Some(tools) = zig_tools() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("target");
    let other = if std::env::consts::ARCH == "aarch64" {
        ("linux/amd64", "x86_64")
    } else {
        ("linux/arm64", "aarch64")
    };
    for args in [
        &["build", "--platform", other.0][..],
        &["image", "build", "--platform", other.0],
    ] {
        let out = xtask(dir.path(), &tools, &target, args)?;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "{} binaries cannot be built on this host (linux/{}) yet: run `rustup target add \
                 {}-unknown-linux-musl`;",
                other.0,
                std::env::consts::ARCH,
                other.1
            )),
            "{args:?}: {stderr}"
        );
        assert!(!target.exists(), "{args:?}: nothing is built");
    }

    // A dry run lists it as what would stop a real run, and plans on.
    for args in [
        &["--dry-run", "build", "--platform", other.0][..],
        &["--dry-run", "image", "build", "--platform", other.0],
    ] {
        let out = xtask(dir.path(), &tools, &target, args)?;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}");
        assert!(
            stdout.contains(&format!(
                "would stop here: {} binaries cannot be built on this host",
                other.0
            )) && stdout.contains(&format!("rustup target add {}-unknown-linux-musl", other.1)),
            "{args:?}: {stdout}"
        );
        // It plans the build that would run once that is installed, not
        // this host's own.
        assert!(
            stdout.contains(&format!(
                "cargo zigbuild --profile release --target {}-unknown-linux-musl",
                other.1
            )),
            "{args:?}: {stdout}"
        );
        assert!(
            !stdout.contains(&format!(
                "--target {}-unknown-linux-gnu",
                std::env::consts::ARCH
            )),
            "{args:?}: {stdout}"
        );
    }
    // The docker builder compiles what this host cannot in its container:
    // nothing stops a dry run, which plans that `docker build`.
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &[
            "--dry-run",
            "image",
            "build",
            "--builder",
            "docker",
            "--platform",
            other.0,
        ],
    )?;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(!stdout.contains("would stop here"), "{stdout}");
    assert!(
        stdout.contains("a multi-stage Dockerfile on docker.io/library/rust:1.95.0")
            && stdout.contains(&format!("build --platform {}", other.0)),
        "{stdout}"
    );
    // zigbuild with --glibc links dynamically: no image can run that, and
    // a dry run says so before anything is built.
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &[
            "--dry-run",
            "image",
            "build",
            "--toolchain",
            "zigbuild",
            "--glibc",
            "2.17",
        ],
    )?;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("would stop here: cargo zigbuild --target")
            && stdout.contains("links glibc dynamically, and images run on an empty base"),
        "{stdout}"
    );
    // Binaries on this host are not what it makes.
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &["build", "--toolchain", "docker"],
    )?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("--toolchain docker compiles inside `docker build`, so it makes images"),
        "{}",
        text(&out.stderr)
    );
    // The local target runs this host's binaries: another platform is
    // refused before anything is built.
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &["deploy", "--platform", other.0],
    )?;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the local target runs this host's own binaries"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("==> building"),
        "nothing is built: {stderr}"
    );

    // A native build of another CPU, and --glibc without zigbuild, are
    // refused before anything runs.
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &["build", "--platform", other.0, "--toolchain", "native"],
    )?;
    assert!(
        text(&out.stderr).contains("--toolchain native builds only this host's own platform"),
        "{}",
        text(&out.stderr)
    );
    let out = xtask(dir.path(), &tools, &target, &["build", "--glibc", "2.17"])?;
    assert!(
        text(&out.stderr).contains("--glibc is zigbuild's"),
        "{}",
        text(&out.stderr)
    );
    // A version that is not one is a usage error, as clap's are (exit 2).
    let out = xtask(
        dir.path(),
        &tools,
        &target,
        &["build", "--toolchain", "zigbuild", "--glibc", "banana"],
    )?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("give a glibc version such as 2.17"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

/// skopeo's JSON answer for `args`.
fn skopeo(args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new("skopeo").args(args).output()?;
    if !out.status.success() {
        return Err(format!("skopeo {args:?}: {}", text(&out.stderr)).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A stand-in for `cross` (which needs a container engine and its images
/// from the internet), in `dir`: for each `--bin`, a real static AArch64
/// executable made with PyPI's zig where cross would leave it
/// (`$CARGO_TARGET_DIR/<triple>/<profile>/<bin>`); its arguments go to
/// `dir/cross.log`.
fn fake_cross(dir: &Path, python: &Path) -> Result {
    let source = dir.join("start.c");
    std::fs::write(
        &source,
        "void _start(void) { __asm__ volatile(\"mov x0, #0\\n mov x8, #93\\n svc #0\"); }\n",
    )?;
    let script = format!(
        "#!/bin/sh\n\
         echo \"cross $*\" >> '{log}'\n\
         target=; profile=; bins=\n\
         while [ $# -gt 0 ]; do\n\
         \x20 case \"$1\" in\n\
         \x20   --target) target=$2; shift;;\n\
         \x20   --profile) profile=$2; shift;;\n\
         \x20   --bin) bins=\"$bins $2\"; shift;;\n\
         \x20 esac\n\
         \x20 shift\n\
         done\n\
         out=\"$CARGO_TARGET_DIR/$target/$profile\"\n\
         mkdir -p \"$out\"\n\
         for b in $bins; do\n\
         \x20 '{python}' -m ziglang cc -target aarch64-linux-musl -nostdlib -static -o \"$out/$b\" '{source}' || exit 1\n\
         done\n",
        log = dir.join("cross.log").display(),
        python = python.display(),
        source = source.display(),
    );
    let path = dir.join("cross");
    std::fs::write(&path, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The `digest` line under the image whose reference contains `name`.
fn digest_under(stdout: &str, name: &str) -> Option<String> {
    let mut lines = stdout.lines().skip_while(|l| !l.contains(name));
    lines.next()?;
    lines
        .next()?
        .trim()
        .strip_prefix("digest")
        .map(|d| d.trim().to_string())
}

#[test]
fn two_platforms_make_one_reproducible_index_that_skopeo_reads_per_architecture() -> Result {
    use sha2::Digest;
    let (Ok(registry), Some(tools)) = (std::env::var("KMLOPS_TEST_REGISTRY"), zig_tools()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs KMLOPS_TEST_REGISTRY"
        );
        eprintln!("SKIPPED: KMLOPS_TEST_REGISTRY is not set (.ci/container-stack.sh)");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin)?;
    fake_cross(&bin, &tools.join("python"))?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../services/model-server/tests/exporters/wine-pipeline.onnx"),
        dir.path().join("wine.onnx"),
    )?;
    std::fs::write(
        dir.path().join("xtask.toml"),
        format!(
            "[registry]\nhost = \"{registry}\"\naccount = \"kmlops-index\"\n\
             [services.test-api]\n\
             [services.wine]\nport = 5003\nmodel = \"onnx\"\nmodel_path = \"wine.onnx\"\n\
             [images]\ndir = \"images\"\n"
        ),
    )?;
    // The shared target directory: this host's half is the release build
    // other tests made already.
    let xtask = |args: &[&str]| -> Result<(String, String)> {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(dir.path().join("xtask.toml"))
            .arg("--progress=never")
            .args(args)
            .args(["--profile", "release"])
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(std::process::Stdio::null())
            .output()?;
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        if !out.status.success() {
            return Err(format!("xtask {args:?}:\n{stdout}\n{stderr}").into());
        }
        Ok((stdout, stderr))
    };
    let both = "linux/amd64,linux/arm64";
    let (first, stderr) = xtask(&["image", "build", "--platform", both])?;
    assert!(
        stderr.contains("cross build --profile release --target aarch64-unknown-linux-musl"),
        "arm64 through cross: {stderr}"
    );
    assert!(
        first.contains("  index   linux/amd64, linux/arm64"),
        "{first}"
    );
    let test_api = digest_under(&first, "/test-api:").ok_or(format!("no digest: {first}"))?;
    let model = digest_under(&first, "/wine:").ok_or(format!("no digest: {first}"))?;

    // Built again from nothing: the same index digests.
    std::fs::remove_dir_all(dir.path().join("images"))?;
    let (second, _) = xtask(&["image", "build", "--platform", both])?;
    assert_eq!(digest_under(&second, "/test-api:"), Some(test_api.clone()));
    assert_eq!(digest_under(&second, "/wine:"), Some(model.clone()));
    // Whatever the order the platforms are given in.
    let (reversed, _) = xtask(&["image", "build", "--platform", "linux/arm64,linux/amd64"])?;
    assert_eq!(
        digest_under(&reversed, "/test-api:"),
        Some(test_api.clone())
    );

    // An engine runs one platform: loading an index is refused up front.
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(dir.path().join("xtask.toml"))
        .args(["image", "load", "--platform", both])
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("this command runs images of one platform"),
        "{}",
        text(&out.stderr)
    );

    // Pushed: each platform's image by digest, the index under the tag.
    let base = format!("{registry}/kmlops-index-{}", std::process::id());
    let (pushed, _) = xtask(&[
        "image",
        "push",
        "--platform",
        both,
        "--registry",
        &base,
        "--insecure",
    ])?;
    assert!(
        pushed.contains(&format!("{base}/test-api@{test_api}")),
        "{pushed}"
    );
    let tag = first
        .lines()
        .find(|l| l.contains("/test-api:"))
        .and_then(|l| l.rsplit_once(':'))
        .map(|(_, t)| t.trim().to_string())
        .ok_or(format!("no tag: {first}"))?;
    for (name, index_digest) in [("test-api", &test_api), ("wine", &model)] {
        let tagged = format!("docker://{base}/{name}:{tag}");
        let raw = Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", &tagged])
            .output()?;
        assert!(raw.status.success(), "{}", text(&raw.stderr));
        assert_eq!(
            &format!("sha256:{:x}", sha2::Sha256::digest(&raw.stdout)),
            index_digest,
            "the registry serves the index byte for byte"
        );
        let index: serde_json::Value = serde_json::from_slice(&raw.stdout)?;
        assert_eq!(
            index["mediaType"],
            "application/vnd.oci.image.index.v1+json"
        );
        let mut layers = Vec::new();
        for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
            let entry = &index["manifests"][i];
            assert_eq!(entry["platform"]["os"], "linux");
            assert_eq!(entry["platform"]["architecture"], arch);
            // skopeo picks the platform's image out of the index.
            let image = skopeo(&[
                "inspect",
                "--tls-verify=false",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
                &tagged,
            ])?;
            assert_eq!(image["Architecture"], arch, "{name} {image}");
            assert_eq!(image["Os"], "linux");
            // (skopeo reports the digest the tag names: the index's.)
            assert_eq!(image["Digest"], index_digest.as_str(), "{name} {arch}");
            // The layers it read are those of the manifest the index names.
            let by_digest = format!(
                "docker://{base}/{name}@{}",
                entry["digest"].as_str().unwrap_or_default()
            );
            let manifest = skopeo(&["inspect", "--raw", "--tls-verify=false", &by_digest])?;
            let named: Vec<&serde_json::Value> = manifest["layers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| &l["digest"])
                .collect();
            let read: Vec<&serde_json::Value> =
                image["Layers"].as_array().into_iter().flatten().collect();
            assert_eq!(read, named, "{name} {arch}");
            layers.push(image["Layers"].clone());
        }
        if name == "wine" {
            // The model's layer is one blob, shared by both platforms.
            let last = |l: &serde_json::Value| l.as_array().and_then(|a| a.last()).cloned();
            assert_eq!(last(&layers[0]), last(&layers[1]), "{layers:?}");
            assert_ne!(layers[0][0], layers[1][0], "each platform's own server");
        }
    }
    let log = std::fs::read_to_string(bin.join("cross.log"))?;
    assert!(log.contains("--target aarch64-unknown-linux-musl"), "{log}");
    Ok(())
}

#[test]
fn ctrl_c_sent_to_the_xtask_alone_stops_cross_too() -> Result {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir()?;
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin)?;
    let log = dir.path().join("cross.log");
    // A cross that builds forever in a child of its own (as cargo-zigbuild
    // runs cargo, and cargo rustc), and says when SIGINT reaches it (the
    // real one stops its build container then). The child must get the
    // signal too: the shell waits for it before running its trap.
    std::fs::write(
        bin.join("cross"),
        format!(
            "#!/bin/sh\n\
             trap 'echo interrupted >> \"{log}\"; exit 130' INT\n\
             sh -c 'echo \"child $$\" >> \"{log}\"; while true; do sleep 0.1; done'\n\
             echo \"started $$\" >> \"{log}\"\n",
            log = log.display()
        ),
    )?;
    std::fs::set_permissions(bin.join("cross"), std::fs::Permissions::from_mode(0o755))?;
    std::fs::write(dir.path().join("xtask.toml"), "[services.test-api]\n")?;
    let other = if std::env::consts::ARCH == "aarch64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--config")
        .arg(dir.path().join("xtask.toml"))
        .args(["--progress=never", "build", "--platform", other])
        .args(["--toolchain", "cross"])
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = std::time::Instant::now();
    let child_pid = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(pid) = text.strip_prefix("child ") {
            break pid.trim().parse::<i32>()?;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = xtask.kill();
            return Err("cross's child never started".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SIGINT to the xtask's pid only, not to its process group.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(xtask.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
    let status = xtask.wait()?;
    assert_eq!(status.signal(), Some(2), "dies of SIGINT: {status}");
    assert!(
        std::fs::read_to_string(&log)?.contains("interrupted"),
        "SIGINT was passed on to cross"
    );
    // Its child too: nothing of the build outlives the xtask.
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child_pid), None).is_ok();
    assert!(
        !alive,
        "cross's child ({child_pid}) still runs after the xtask died"
    );
    Ok(())
}
