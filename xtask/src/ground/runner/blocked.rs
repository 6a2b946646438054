//! Why a real run would stop, as values. A dry run lists what it found
//! unmet once per cause: the later failures a cause explains (every
//! command of a missing tool, every call without the kube context) are
//! not listed again, whatever their text or the context wrapped round it.

use std::fmt;

/// A cause behind failures a dry run meets more than once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A tool not on PATH (its name): each of its commands fails too.
    MissingTool(String),
    /// The target's kube context is not there or not selected: each call
    /// to the cluster fails too.
    KubeContext,
    /// GKE has no Google Cloud project: its kube context, cluster and
    /// registry all name one.
    GcpProject,
}

/// An error of a known `Cause`, with the message a person reads.
#[derive(Debug)]
pub struct Blocked {
    pub cause: Cause,
    message: String,
}

impl Blocked {
    /// `message` as an error of `cause`.
    pub fn error(cause: Cause, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Self {
            cause,
            message: message.into(),
        })
    }

    /// The cause of `err`: the first `Blocked` in its chain, if any.
    pub fn cause_of(err: &anyhow::Error) -> Option<&Cause> {
        err.chain()
            .find_map(|e| e.downcast_ref::<Self>())
            .map(|b| &b.cause)
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Blocked {}

/// What a dry run found unmet, in order, one entry per cause (and per
/// text, for problems of no known cause).
#[derive(Debug, Default)]
pub struct Blockers(Vec<(Option<Cause>, String)>);

impl Blockers {
    /// Adds `problem` unless an earlier entry has its cause (or, with no
    /// known cause, its text).
    pub fn add(&mut self, problem: &anyhow::Error) {
        let cause = Blocked::cause_of(problem).cloned();
        let text = format!("{problem:#}");
        let known = self.0.iter().any(|(c, t)| match (&cause, c) {
            (Some(a), Some(b)) => a == b,
            _ => *t == text,
        });
        if !known {
            self.0.push((cause, text));
        }
    }

    /// The entries' texts, in order.
    pub fn texts(&self) -> Vec<String> {
        self.0.iter().map(|(_, t)| t.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_cause_whatever_wraps_it() {
        let mut b = Blockers::default();
        b.add(&Blocked::error(Cause::GcpProject, "no project"));
        b.add(
            &Blocked::error(Cause::GcpProject, "no project")
                .context("--target gke needs a project"),
        );
        b.add(&Blocked::error(
            Cause::MissingTool("helm".into()),
            "no helm",
        ));
        b.add(&Blocked::error(
            Cause::MissingTool("kind".into()),
            "no kind",
        ));
        b.add(&Blocked::error(
            Cause::MissingTool("helm".into()),
            "`helm list` failed: cannot start",
        ));
        b.add(&anyhow::anyhow!("the CRD is missing"));
        b.add(&anyhow::anyhow!("the CRD is missing"));
        assert_eq!(
            b.texts(),
            ["no project", "no helm", "no kind", "the CRD is missing"]
        );
    }
}
