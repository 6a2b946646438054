//! Waiting for something to become true, under a deadline: the one loop
//! every wait in the xtask goes through (readiness, an API server, a
//! port-forward, a route through the ingress, a process exiting).

use std::time::{Duration, Instant};

use anyhow::Result;

/// One look at what is being waited for.
pub enum Check<T> {
    /// It is there.
    Done(T),
    /// Not yet; what was seen (for the error when time runs out).
    NotYet(String),
}

/// How a wait ended.
pub enum Waited<T> {
    Done {
        value: T,
        after: Duration,
    },
    /// The deadline passed; the last thing seen.
    TimedOut {
        last: String,
    },
}

/// Looks every `every` until `look` says done or `limit` has passed (the
/// last look comes after the deadline, so a slow look still counts). An
/// error from `look` ends the wait at once.
pub fn until<T>(
    limit: Duration,
    every: Duration,
    mut look: impl FnMut() -> Result<Check<T>>,
) -> Result<Waited<T>> {
    let start = Instant::now();
    loop {
        let last = match look()? {
            Check::Done(value) => {
                return Ok(Waited::Done {
                    value,
                    after: start.elapsed(),
                });
            }
            Check::NotYet(last) => last,
        };
        if start.elapsed() >= limit {
            return Ok(Waited::TimedOut { last });
        }
        std::thread::sleep(every);
    }
}

/// Whether `holds` becomes true within `limit`, asked every `every`.
pub fn within(limit: Duration, every: Duration, mut holds: impl FnMut() -> bool) -> bool {
    matches!(
        until(limit, every, || Ok(if holds() {
            Check::Done(())
        } else {
            Check::NotYet(String::new())
        })),
        Ok(Waited::Done { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_early_or_timed_out_with_the_last_look() -> Result<()> {
        let mut n = 0;
        let w = until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            Ok(if n == 3 {
                Check::Done(n)
            } else {
                Check::NotYet(format!("look {n}"))
            })
        })?;
        assert!(matches!(w, Waited::Done { value: 3, .. }));
        let w = until(Duration::from_millis(20), Duration::from_millis(5), || {
            Ok(Check::<()>::NotYet("never".into()))
        })?;
        assert!(matches!(w, Waited::TimedOut { last } if last == "never"));
        assert!(!within(
            Duration::from_millis(10),
            Duration::from_millis(2),
            || false
        ));
        Ok(())
    }
}
