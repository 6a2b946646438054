//! Linux binaries of another platform than the host's (issue 23): the
//! xtask driving `cargo zigbuild` for real, for a glibc-versioned triple
//! of this host's CPU (`x86_64-unknown-linux-gnu.2.17`, whose std this
//! toolchain has), and
//! a platform this host cannot build saying exactly what to install.
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
    // the image step says so instead of packing it.
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
        stderr.contains("test-api) is linked dynamically (it needs the loader /lib"),
        "{stderr}"
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
    Ok(())
}
