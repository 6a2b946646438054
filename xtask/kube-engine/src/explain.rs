//! Why a workload is not ready: each unready pod with its waiting/terminated
//! reason, the last lines of its logs, and the recent events around it.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Client;
use kube::api::{Api, ListParams, LogParams};

const LOG_LINES: i64 = 10;
const EVENTS: usize = 10;

/// Why one pod is not running its containers, as Kubernetes says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
    pub container: Option<String>,
    /// The container restarted: its previous run's logs say why.
    pub crashed: bool,
}

impl Problem {
    /// Waiting longer will not help: fail the rollout now, as Skaffold does.
    pub fn is_hopeless(&self) -> bool {
        matches!(
            self.reason.as_str(),
            "ImagePullBackOff"
                | "ErrImageNeverPull"
                | "InvalidImageName"
                | "CreateContainerConfigError"
                | "CrashLoopBackOff"
        )
    }
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The most telling problem of an unready pod, if Kubernetes reports one.
pub fn problem(pod: &Pod) -> Option<Problem> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in containers {
        if let Some(p) = container_problem(cs) {
            return Some(p);
        }
    }
    let unscheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unscheduled {
        return Some(Problem {
            reason: c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
            message: c.message.clone().unwrap_or_default(),
            container: None,
            crashed: false,
        });
    }
    (status.phase.as_deref() == Some("Failed")).then(|| Problem {
        reason: status.reason.clone().unwrap_or_else(|| "Failed".into()),
        message: status.message.clone().unwrap_or_default(),
        container: None,
        crashed: false,
    })
}

fn container_problem(cs: &ContainerStatus) -> Option<Problem> {
    let state = cs.state.as_ref()?;
    let crashed = cs.restart_count > 0;
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        if !matches!(
            reason.as_str(),
            "" | "ContainerCreating" | "PodInitializing"
        ) {
            let mut message = w.message.clone().unwrap_or_default();
            let last = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
            if let Some(t) = last {
                let _ = write!(
                    message,
                    "{}last run exited with code {}{} (restarts: {})",
                    if message.is_empty() { "" } else { "; " },
                    t.exit_code,
                    t.reason
                        .as_deref()
                        .map(|r| format!(", {r}"))
                        .unwrap_or_default(),
                    cs.restart_count
                );
            }
            return Some(Problem {
                reason,
                message,
                container: Some(cs.name.clone()),
                crashed,
            });
        }
    }
    if let Some(t) = &state.terminated {
        return Some(Problem {
            reason: t.reason.clone().unwrap_or_else(|| "Terminated".into()),
            message: format!(
                "exited with code {}{}",
                t.exit_code,
                t.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
            container: Some(cs.name.clone()),
            crashed: true,
        });
    }
    None
}

/// A report on the pods matching `selector` and the events about them, `owner`
/// (and objects named after it, such as its ReplicaSets).
pub async fn explain(client: &Client, namespace: &str, owner: &str, selector: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut out = String::new();
    let listed = match pods.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list.items,
        Err(e) => {
            let _ = writeln!(out, "  (could not list pods: {e})");
            Vec::new()
        }
    };
    if listed.is_empty() {
        let _ = writeln!(out, "  no pods match {selector} (see the events below)");
    }
    let mut names = BTreeSet::from([owner.to_string()]);
    for pod in &listed {
        let name = pod.metadata.name.clone().unwrap_or_default();
        names.insert(name.clone());
        if is_ready(pod) {
            continue;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        match problem(pod) {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  pod {name}: {}{}",
                    p.reason,
                    if p.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", p.message)
                    }
                );
                if let Some(container) = &p.container {
                    let lines = last_logs(&pods, &name, container, p.crashed).await;
                    if !lines.trim().is_empty() {
                        let _ = writeln!(
                            out,
                            "    last log lines of {container}{}:",
                            if p.crashed { " (previous run)" } else { "" }
                        );
                        for line in lines.lines() {
                            let _ = writeln!(out, "      {line}");
                        }
                    }
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "  pod {name}: not ready (phase {phase}, no container reports a problem: is the readiness probe failing?)"
                );
            }
        }
    }
    out.push_str(&events(client, namespace, owner, &names).await);
    out
}

async fn last_logs(pods: &Api<Pod>, pod: &str, container: &str, previous: bool) -> String {
    let params = LogParams {
        container: Some(container.to_string()),
        tail_lines: Some(LOG_LINES),
        previous,
        ..LogParams::default()
    };
    match pods.logs(pod, &params).await {
        Ok(text) => text,
        Err(e) if previous => match pods
            .logs(
                pod,
                &LogParams {
                    previous: false,
                    ..params
                },
            )
            .await
        {
            Ok(text) => text,
            Err(_) => format!("(no logs: {e})"),
        },
        Err(e) => format!("(no logs: {e})"),
    }
}

async fn events(client: &Client, namespace: &str, owner: &str, names: &BTreeSet<String>) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let mut items = match api.list(&ListParams::default()).await {
        Ok(list) => list.items,
        Err(e) => return format!("  (could not list events: {e})\n"),
    };
    items.retain(|e| {
        let n = e.involved_object.name.as_deref().unwrap_or_default();
        names.contains(n) || n.starts_with(&format!("{owner}-"))
    });
    items.sort_by_key(event_time);
    let skip = items.len().saturating_sub(EVENTS);
    let mut out = String::new();
    if items.is_empty() {
        return "  no recent events\n".into();
    }
    let _ = writeln!(out, "  recent events:");
    for e in &items[skip..] {
        let _ = writeln!(
            out,
            "    {} {} {}/{}: {}",
            e.type_.as_deref().unwrap_or("Normal"),
            e.reason.as_deref().unwrap_or(""),
            e.involved_object
                .kind
                .as_deref()
                .unwrap_or("")
                .to_lowercase(),
            e.involved_object.name.as_deref().unwrap_or(""),
            e.message.as_deref().unwrap_or("").trim()
        );
    }
    out
}

/// RFC 3339 strings sort in time order.
fn event_time(e: &Event) -> String {
    let time = e
        .last_timestamp
        .as_ref()
        .map(|t| serde_json::to_string(t).unwrap_or_default())
        .or_else(|| {
            e.event_time
                .as_ref()
                .map(|t| serde_json::to_string(t).unwrap_or_default())
        })
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| serde_json::to_string(t).unwrap_or_default())
        });
    time.unwrap_or_default()
}
