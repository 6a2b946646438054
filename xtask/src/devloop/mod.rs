//! `cargo xtask dev`: deploy once, then watch exactly what each service is
//! built from (`watch`) and on a change rebuild, redeploy and re-test only
//! the services affected, as `skaffold dev` and `tilt up` do. A failed
//! build, rollout or smoke test never ends the loop and never takes down
//! what serves: a build failure changes nothing, and a version that does
//! not come up or fails its smoke test is replaced by the last good one.
//! Binaries are kept by content (`<run_dir>/dev/<bin>-<sha>`), so that a
//! later build cannot overwrite what runs and the last good one can start
//! again.

mod logs;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::build::{self, Built, Profile};
use crate::ground::context::Ctx;
use crate::ground::files;
use crate::ground::services::ServiceSpec;
use crate::targets::target::{Delivered, Delivery, Session, Target};
use crate::verify::smoke;

/// Why the loop stopped without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The watcher went away (nothing more can change).
    Quiet,
    /// The settings file changed and loads: the caller starts the loop
    /// again with them (what runs is kept; the new deploy changes only
    /// what the settings change). `removed`: the loop's services the new
    /// settings no longer have, torn down already.
    SettingsChanged { removed: Vec<String> },
}

/// How the loop runs.
pub struct Options {
    pub profile: Profile,
    /// Stream every service's log lines.
    pub logs: bool,
    /// Quiet time after a change before the loop acts (editors write in
    /// bursts).
    pub debounce: Duration,
    /// The settings file (None: the built-in settings): watched, and a
    /// change to it starts the loop again.
    pub settings: Option<PathBuf>,
    /// The settings file read again: its services' names, or why it does
    /// not load.
    pub reload: Box<dyn Fn() -> Result<Vec<String>>>,
    /// Where what runs is kept (`<[local] run_dir>/dev`, `keep`).
    pub keep_dir: PathBuf,
}

/// What every round builds with: the loop's options and the platform the
/// target's machines run.
struct Round<'a> {
    opts: &'a Options,
    to: build::Destination,
}

/// What runs now, per service: the last version that came up and passed
/// its smoke test.
#[derive(Default)]
struct Good {
    built: BTreeMap<String, Built>,
    images: BTreeMap<String, Delivery>,
}

/// Deploys `specs`, then loops until the process is interrupted (the
/// caller's Ctrl-C handler tears down).
///
/// # Errors
/// Only what stops the loop from starting: the target cannot be opened, the
/// workspace cannot be read, the files cannot be watched.
pub fn run(cx: &Ctx, target: &dyn Target, specs: &[ServiceSpec], opts: &Options) -> Result<Ended> {
    let session = target.open(cx)?;
    target.prepare(cx, &session, true)?;
    // Built for the target's machines (a local cluster's node on a Mac
    // runs Linux), as deploy does.
    let runs_on = target
        .platform(cx, &session)
        .context("asking which platform the target's machines run")?;
    let round = Round {
        opts,
        to: build::Destination::pick(runs_on, build::toolchain::Kind::Auto, None)?,
    };
    let plan = watch::Plan::new(
        cx,
        specs,
        target.manifests(cx).as_deref(),
        opts.settings.as_deref(),
    )?;
    // Under --dry-run the plan is the first round's: nothing to watch.
    if cx.runner.unless_dry_run(|| Ok(()))?.is_none() {
        plan_round(cx, target, &session, specs, &round);
        cx.runner.step(format!(
            "watch {} director(ies) and redeploy what each change affects, until Ctrl-C",
            plan.watches().len()
        ));
        return Ok(Ended::Quiet);
    }
    // Watching starts before the first build, so that a file saved while
    // it runs is not lost: it makes the next round.
    let (mut watcher, rx) = changes()?;
    let mut armed = Armed::default();
    armed.arm(&mut watcher, &plan.watches())?;
    let mut rounds = Rounds {
        cx,
        target,
        session,
        round,
        good: Good::default(),
        pending: BTreeSet::new(),
        settings_broken: false,
    };
    rounds.redeploy(specs, "start");
    if crate::ground::interrupt::interrupted() {
        return Ok(Ended::Quiet);
    }
    if opts.logs {
        stream_logs(cx, target, specs);
    }
    eprintln!(
        "==> watching {} director(ies); Ctrl-C stops (and tears down what dev started)",
        plan.watches().len()
    );
    loop {
        let Ok(first) = rx.recv() else {
            return Ok(Ended::Quiet);
        };
        let changed = settle(first, &rx, opts.debounce);
        // A directory replaced (or created) since it was watched is
        // watched again: its old watch sees nothing any more. One that
        // cannot be is said, and the loop goes on with the rest.
        if let Err(e) = armed.arm(&mut watcher, &plan.watches()) {
            eprintln!("==> {e:#}");
        }
        if let Some(ended) = rounds.on_change(specs, &plan, &changed) {
            return Ok(ended);
        }
    }
}

/// The loop's state from round to round.
struct Rounds<'a> {
    cx: &'a Ctx,
    target: &'a dyn Target,
    session: Session,
    round: Round<'a>,
    good: Good,
    /// Services whose last build failed (one cargo invocation builds them
    /// all: a broken crate fails every service's round): built again with
    /// the next change, whatever it touches, so no edit is forgotten.
    pending: BTreeSet<String>,
    /// Whether the last change to the settings did not load.
    settings_broken: bool,
}

impl Rounds<'_> {
    /// What a burst of saves (`changed`) calls for: the loop started again
    /// with new settings (its end), or a round for the services it
    /// affects and those whose last build failed.
    fn on_change(
        &mut self,
        specs: &[ServiceSpec],
        plan: &watch::Plan,
        changed: &[PathBuf],
    ) -> Option<Ended> {
        if changed.is_empty() {
            return None;
        }
        if let Some(settings) = plan.settings.as_ref().filter(|s| changed.contains(s))
            && let Some(ended) = self.reload(specs, settings)
        {
            return Some(ended);
        }
        let affected = plan.affected(changed);
        if affected.is_empty() {
            return None;
        }
        let what = describe(self.cx, &plan.inputs_among(changed));
        eprintln!("==> {what} changed: redeploying {}", affected.join(", "));
        let chosen: Vec<ServiceSpec> = specs
            .iter()
            .filter(|s| affected.contains(&s.name) || self.pending.contains(&s.name))
            .cloned()
            .collect();
        self.redeploy(&chosen, &what);
        None
    }

    /// The settings file changed (see `reload`).
    fn reload(&mut self, specs: &[ServiceSpec], settings: &Path) -> Option<Ended> {
        let (cx, target, session) = (self.cx, self.target, &self.session);
        reload(
            cx,
            (target, session),
            specs,
            (settings, self.round.opts.reload.as_ref()),
            &mut self.settings_broken,
        )
    }

    /// One round for `chosen`, after a change described as `what`.
    fn redeploy(&mut self, chosen: &[ServiceSpec], what: &str) {
        let (cx, target, session) = (self.cx, self.target, &self.session);
        let built = iterate(
            cx,
            target,
            session,
            chosen,
            what,
            &self.round,
            &mut self.good,
        );
        for s in chosen {
            if built {
                self.pending.remove(&s.name);
            } else {
                self.pending.insert(s.name.clone());
            }
        }
    }
}

/// A file watcher (nothing watched yet) and the paths of each event it
/// sees but reads.
fn changes() -> Result<(notify::RecommendedWatcher, mpsc::Receiver<Vec<PathBuf>>)> {
    let (tx, rx) = mpsc::channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(e) = event
            && !e.kind.is_access()
        {
            let _ = tx.send(e.paths);
        }
    })
    .context("cannot watch files")?;
    Ok((watcher, rx))
}

/// Every service's log lines streamed with its name, where the target
/// can; where it cannot, said with the command that shows them.
fn stream_logs(cx: &Ctx, target: &dyn Target, specs: &[ServiceSpec]) {
    for spec in specs {
        match target.log_source(cx, spec) {
            Some(source) => logs::stream(spec.name.clone(), source),
            None => eprintln!(
                "   {}: logs are not streamed on this target; `cargo xtask logs -f {}` shows them",
                spec.name, spec.name
            ),
        }
    }
}

/// The paths of a burst of saves: `first`, and what arrives until
/// `debounce` passes quietly (editors save in bursts), the irrelevant ones
/// left out, each once.
fn settle(
    first: Vec<PathBuf>,
    rx: &mpsc::Receiver<Vec<PathBuf>>,
    debounce: Duration,
) -> Vec<PathBuf> {
    let mut changed = first;
    while let Ok(more) = rx.recv_timeout(debounce) {
        changed.extend(more);
    }
    changed.retain(|p| watch::relevant(p));
    changed.sort();
    changed.dedup();
    changed
}

/// The settings file changed: when it loads, the services that left it
/// are stopped and the loop ends to start again with the new settings;
/// when it does not, that is said (`broken` remembers it, for the save
/// that mends it) and the loop goes on with the old ones.
fn reload(
    cx: &Ctx,
    (target, session): (&dyn Target, &Session),
    specs: &[ServiceSpec],
    (settings, load): (&Path, &dyn Fn() -> Result<Vec<String>>),
    broken: &mut bool,
) -> Option<Ended> {
    match load() {
        Ok(kept) => {
            eprintln!(
                "==> {} {}: starting the dev loop again with the new settings",
                settings.display(),
                if *broken { "loads again" } else { "changed" }
            );
            // What left the settings is ours to stop: nothing else would
            // know it runs.
            let gone: Vec<ServiceSpec> = specs
                .iter()
                .filter(|s| !kept.contains(&s.name))
                .cloned()
                .collect();
            let removed: Vec<String> = gone.iter().map(|s| s.name.clone()).collect();
            if !gone.is_empty() {
                eprintln!(
                    "==> {} left the settings: stopping {}",
                    removed.join(", "),
                    if removed.len() == 1 { "it" } else { "them" }
                );
                if let Err(e) = target.teardown(cx, session, &gone) {
                    eprintln!("{e:#}");
                }
            }
            Some(Ended::SettingsChanged { removed })
        }
        Err(e) => {
            *broken = true;
            eprintln!(
                "==> {} changed but does not load ({e:#}); still running with the previous settings",
                settings.display()
            );
            None
        }
    }
}

/// The watches in place, with the identity (device, inode) each watched
/// directory had when it was armed.
#[derive(Default)]
struct Armed(BTreeMap<PathBuf, (bool, Option<(u64, u64)>)>);

impl Armed {
    /// Watches each of `watches` not watched yet, or whose directory is
    /// another one now (deleted and created again, renamed over).
    fn arm(&mut self, watcher: &mut impl Watcher, watches: &[watch::Watch]) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        for w in watches {
            let id = std::fs::metadata(&w.path).ok().map(|m| (m.dev(), m.ino()));
            let now = (w.recursive, id);
            match self.0.get(&w.path) {
                Some(before) if *before == now => continue,
                Some(_) => {
                    let _ = watcher.unwatch(&w.path);
                }
                None => {}
            }
            if id.is_none() {
                // Not there (now): tried again after the next change.
                self.0.insert(w.path.clone(), now);
                continue;
            }
            let mode = if w.recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher
                .watch(&w.path, mode)
                .with_context(|| format!("cannot watch {}", w.path.display()))?;
            self.0.insert(w.path.clone(), now);
        }
        Ok(())
    }
}

/// The changed files, relative to the workspace, for the report line.
fn describe(cx: &Ctx, changed: &[PathBuf]) -> String {
    let root = cx.root.canonicalize().unwrap_or_else(|_| cx.root.clone());
    // An editor's or sed's temporary file is gone by now: name what is there.
    let existing: Vec<PathBuf> = changed.iter().filter(|p| p.exists()).cloned().collect();
    let changed = if existing.is_empty() {
        changed
    } else {
        &existing[..]
    };
    let shown: Vec<String> = changed
        .iter()
        .take(3)
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    let more = changed.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// One round: build, deliver, apply, smoke-test `specs`; one line per
/// service; on failure the last good version serves again.
fn iterate(
    cx: &Ctx,
    target: &dyn Target,
    session: &Session,
    specs: &[ServiceSpec],
    what: &str,
    round: &Round<'_>,
    good: &mut Good,
) -> bool {
    if matches!(cx.runner.unless_dry_run(|| Ok(())), Ok(None)) {
        plan_round(cx, target, session, specs, round);
        return true;
    }
    let started = Instant::now();
    let built = match build::build_only(cx, specs, round.opts.profile, &round.to)
        .and_then(|b| keep(cx, &round.opts.keep_dir, b, good))
    {
        Ok(b) => b,
        Err(_) if crate::ground::interrupt::interrupted() => {
            // cargo died of the same Ctrl-C; the handler is tearing down.
            return true;
        }
        Err(e) => {
            // The compiler's error first, then the verdict.
            eprintln!("{e:#}");
            failed_build(specs, good, what, started.elapsed().as_secs_f64());
            return false;
        }
    };
    let build_secs = started.elapsed().as_secs_f64();
    let deploy_started = Instant::now();
    let outcome = target
        .deliver(cx, session, built.clone())
        .and_then(|delivered| {
            target.apply(cx, session, &delivered)?;
            Ok(delivered)
        });
    let deploy_secs = deploy_started.elapsed().as_secs_f64();
    let delivered = match outcome {
        Ok(d) => d,
        Err(_) if crate::ground::interrupt::interrupted() => return true,
        Err(e) => {
            eprintln!("{e:#}");
            let back = rollback(cx, target, session, specs, good);
            for s in specs {
                println!(
                    "✗ {:<14} {what}: build {build_secs:.1}s, deploy failed; {}",
                    s.name,
                    serving(good, s, back)
                );
            }
            return true;
        }
    };
    let urls = target.urls(cx, session, specs).unwrap_or_default();
    let failed = smoke_each(cx, specs, &urls, |spec, url, smoke_secs| {
        println!(
            "✓ {:<14} {what}: build {build_secs:.1}s, deploy {deploy_secs:.1}s, smoke {smoke_secs:.1}s ({:.1}s) {url}",
            spec.name,
            started.elapsed().as_secs_f64()
        );
        good.keep(spec, &delivered);
    });
    if !failed.is_empty() {
        let back = rollback(cx, target, session, &failed, good);
        for s in &failed {
            println!(
                "✗ {:<14} {what}: build {build_secs:.1}s, deploy {deploy_secs:.1}s, smoke test failed; {}",
                s.name,
                serving(good, s, back)
            );
        }
    }
    true
}

/// Smoke-tests each of `specs` at its URL (`urls`, in order): `passed`
/// gets each that passes, with the seconds its test took; the failures
/// are said and returned.
fn smoke_each(
    cx: &Ctx,
    specs: &[ServiceSpec],
    urls: &[String],
    mut passed: impl FnMut(&ServiceSpec, &str, f64),
) -> Vec<ServiceSpec> {
    let mut failed = Vec::new();
    for (spec, url) in specs.iter().zip(urls) {
        let started = Instant::now();
        match smoke::check(cx, spec, url) {
            Ok(()) => passed(spec, url, started.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("{e:#}");
                failed.push(spec.clone());
            }
        }
    }
    failed
}

/// Each of `specs`' line when their build (or model check) failed after
/// `secs`: what serves instead.
fn failed_build(specs: &[ServiceSpec], good: &Good, what: &str, secs: f64) {
    for s in specs {
        let left = serving(good, s, true);
        println!(
            "✗ {:<14} {what}: build or model check failed after {secs:.1}s; {left}",
            s.name
        );
    }
}

/// A dry run's round: its steps are the plan, and there is nothing to
/// report.
fn plan_round(
    cx: &Ctx,
    target: &dyn Target,
    session: &Session,
    specs: &[ServiceSpec],
    round: &Round<'_>,
) {
    if let Err(e) = build::build_only(cx, specs, round.opts.profile, &round.to)
        .and_then(|b| target.deliver(cx, session, b))
        .and_then(|d| target.apply(cx, session, &d))
    {
        eprintln!("{e:#}");
    }
}

impl Good {
    /// `spec`'s build and image in `delivered` are what serves now.
    fn keep(&mut self, spec: &ServiceSpec, delivered: &Delivered) {
        if let Some(b) = delivered.built.iter().find(|b| b.spec.name == spec.name) {
            self.built.insert(spec.name.clone(), b.clone());
        }
        if let Some(d) = delivered.image_of(spec) {
            self.images.insert(
                spec.name.clone(),
                Delivery {
                    image: d.image.clone(),
                    reference: d.reference.clone(),
                },
            );
        }
    }
}

/// What the user is left with, for a failure line; `came_back`: whether
/// the last good version was started again (or had nothing to undo).
fn serving(good: &Good, spec: &ServiceSpec, came_back: bool) -> &'static str {
    match (good.built.contains_key(&spec.name), came_back) {
        (true, true) => "the last good version serves",
        (true, false) => {
            "the last good version did not come back either (above): nothing serves; fix it and save"
        }
        (false, _) => "nothing serves yet: fix it and save",
    }
}

/// Starts the last good version of `specs` again (those that have one);
/// whether that worked (true when there was none to start).
fn rollback(
    cx: &Ctx,
    target: &dyn Target,
    session: &Session,
    specs: &[ServiceSpec],
    good: &Good,
) -> bool {
    let built: Vec<Built> = specs
        .iter()
        .filter_map(|s| good.built.get(&s.name).cloned())
        .collect();
    if built.is_empty() {
        return true;
    }
    let images = specs
        .iter()
        .filter_map(|s| {
            good.images.get(&s.name).map(|d| Delivery {
                image: d.image.clone(),
                reference: d.reference.clone(),
            })
        })
        .collect();
    let delivered = Delivered { built, images };
    match target.apply(cx, session, &delivered) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("the last good version did not come back either: {e:#}");
            false
        }
    }
}

/// Copies each built binary to `<dir>/<bin>-<sha256 prefix>`, and each
/// model file to `<dir>/<service>-<sha256 prefix>.onnx` (once
/// per content), and points `Built` there: what runs never changes under
/// the loop, so a version that fails leaves the last good one, binary and
/// model, to start again. The model server runs its kept copy with its own
/// file watching off (`MODEL_RELOAD_SECS=0`): the loop decides when a new
/// model serves, after it loaded. Copies no longer needed go (`prune`).
fn keep(cx: &Ctx, dir: &Path, built: Vec<Built>, good: &Good) -> Result<Vec<Built>> {
    let made = cx.runner.unless_dry_run(|| {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
    })?;
    if made.is_none() {
        return Ok(built); // a dry run keeps nothing
    }
    built
        .into_iter()
        .map(|b| {
            let Ok(bytes) = std::fs::read(&b.binary) else {
                return Ok(b); // under --dry-run nothing was built
            };
            let binary = keep_copy(dir, &b.spec.bin, "", &bytes, 0o755)?;
            let mut spec = b.spec;
            if let Some(model) = &spec.model_file {
                let bytes = std::fs::read(model)
                    .with_context(|| format!("cannot read {}", model.display()))?;
                let kept = keep_copy(dir, &spec.name, ".onnx", &bytes, 0o644)?;
                spec.host_env
                    .retain(|(k, _)| k != "MODEL_PATH" && k != "MODEL_RELOAD_SECS");
                spec.host_env
                    .push(("MODEL_PATH".into(), kept.display().to_string()));
                spec.host_env.push(("MODEL_RELOAD_SECS".into(), "0".into()));
                spec.model_file = Some(kept);
            }
            Ok(Built {
                binary,
                spec,
                runtime_library: b.runtime_library,
                platform: b.platform,
            })
        })
        .collect::<Result<Vec<Built>>>()
        .inspect(|kept| prune(dir, kept, good))
}

/// `<dir>/<stem>-<sha256 prefix><suffix>` holding `bytes` (written once,
/// whole, with `mode`).
fn keep_copy(
    dir: &std::path::Path,
    stem: &str,
    suffix: &str,
    bytes: &[u8],
    mode: u32,
) -> Result<PathBuf> {
    let sha = format!("{:x}", Sha256::digest(bytes));
    let kept = dir.join(format!("{stem}-{}{suffix}", &sha[..16]));
    if !kept.exists() {
        files::write_whole_with(&kept, mode, |file| {
            use std::io::Write;
            file.write_all(bytes)
                .with_context(|| format!("cannot write {}", kept.display()))
        })?;
    }
    Ok(kept)
}

/// Removes the copies neither this round nor the last good versions use,
/// so that a long session does not fill the disk with binaries.
fn prune(dir: &std::path::Path, kept: &[Built], good: &Good) {
    let wanted: Vec<&std::path::Path> = kept
        .iter()
        .chain(good.built.values())
        .flat_map(|b| std::iter::once(b.binary.as_path()).chain(b.spec.model_file.as_deref()))
        .collect();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !wanted.contains(&path.as_path()) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
