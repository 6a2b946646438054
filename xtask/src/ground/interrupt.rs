//! Ctrl-C, handled once for the whole xtask: cleanups registered while an
//! operation is under way (containers a deploy started, say) run, then the
//! process dies of SIGINT as it would have without a handler, so that a
//! shell loop or make sees the interrupt. A critical section (a `docker
//! run` whose container would appear after a cleanup that ran meanwhile)
//! defers that until it ends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};

type Cleanup = Box<dyn Fn() + Send>;

static CLEANUPS: Mutex<Vec<(usize, Cleanup)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicUsize = AtomicUsize::new(0);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();
static EXITING: Once = Once::new();

/// Installs the handler of Ctrl-C, SIGTERM and SIGHUP (once; `main`
/// calls it): a thread of its own waits for them, so that the cleanups
/// run outside the signal handler.
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    INSTALL.call_once(|| {
        // Without the handler (it cannot fail on Linux), a signal kills
        // the process as it would have anyway.
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            for _ in signals.forever() {
                INTERRUPTED.store(true, Ordering::SeqCst);
                if CRITICAL.load(Ordering::SeqCst) == 0 {
                    clean_up_and_exit();
                }
            }
        });
    });
}

/// Whether Ctrl-C has arrived: a child that died of it (cargo shares the
/// terminal's process group) is not a failure to report while the
/// handler tears down and exits.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Runs `cleanup` if Ctrl-C arrives while the returned guard lives.
#[must_use = "the cleanup is dropped with its guard"]
pub fn on_interrupt(cleanup: impl Fn() + Send + 'static) -> Guard {
    let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
    if let Ok(mut c) = CLEANUPS.lock() {
        c.push((id, Box::new(cleanup)));
    }
    Guard(id)
}

/// Unregisters its cleanup when dropped.
pub struct Guard(usize);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(mut c) = CLEANUPS.lock() {
            c.retain(|(id, _)| *id != self.0);
        }
    }
}

/// Runs `f` with Ctrl-C deferred until it returns (then the cleanups run and
/// the process exits). Either the handler sees the section and leaves the
/// exit to it, or the section sees the interrupt and does not start.
pub fn critical<T>(f: impl FnOnce() -> T) -> T {
    CRITICAL.fetch_add(1, Ordering::SeqCst);
    if INTERRUPTED.load(Ordering::SeqCst) {
        clean_up_and_exit();
    }
    let out = f();
    CRITICAL.fetch_sub(1, Ordering::SeqCst);
    if INTERRUPTED.load(Ordering::SeqCst) {
        clean_up_and_exit();
    }
    out
}

/// Runs every registered cleanup, then dies of SIGINT (exit 130 if that
/// fails), once.
fn clean_up_and_exit() {
    EXITING.call_once(|| {
        let cleanups = CLEANUPS
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        for (_, cleanup) in cleanups.iter().rev() {
            cleanup();
        }
        // A spinner may have left its line unfinished.
        eprintln!();
        let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGINT);
        std::process::exit(130);
    });
}

/// Passes Ctrl-C on to the process group led by the child `pid` (the
/// runner starts each child in a group of its own) while the returned
/// guard lives: a running `cargo`, `cargo zigbuild` with the cargo and
/// rustc it starts, or `cross` (which stops its build container on
/// SIGINT) must not outlive the xtask, whether the terminal, `kill -INT`,
/// a supervisor or a hang-up stopped it. The group gets SIGINT, up to ten
/// seconds to be gone, then SIGKILL.
#[must_use = "the forwarding ends with its guard"]
pub fn forward_to(pid: u32) -> Guard {
    on_interrupt(move || stop_group(pid))
}

/// SIGINT to the group `pgid`, then SIGKILL if any of it is left ten
/// seconds later.
fn stop_group(pgid: u32) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pgid) else { return };
    let group = Pid::from_raw(raw);
    if killpg(group, Signal::SIGINT).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // The thread that waits on the leader reaps it; the group is gone
    // when its last member is.
    while std::time::Instant::now() < deadline {
        if killpg(group, None).is_err() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// For `main`, when a command failed: if Ctrl-C arrived, the failure is
/// its doing (a child died of it), so the cleanups run and the process
/// dies of SIGINT instead of reporting it; otherwise returns.
pub fn exit_if_interrupted() {
    if interrupted() {
        clean_up_and_exit();
    }
}
