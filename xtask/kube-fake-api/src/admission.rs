//! Pod Security Admission as the API server enforces it
//! (k8s.io/pod-security-admission, policy "latest"): a namespace's
//! `pod-security.kubernetes.io/enforce` label (`baseline` or `restricted`)
//! refuses pods that break the level with 403 Forbidden; workload objects
//! (Deployments) are not checked, so their pods fail at creation instead.

use serde_json::Value;

/// The enforced level of a namespace object, if any.
pub fn enforced_level(namespace: &Value) -> Option<&str> {
    namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
        .as_str()
        .filter(|l| matches!(*l, "baseline" | "restricted"))
}

/// The forbidden message for a pod named `name` with `spec`, under `level`:
/// `pods "x" is forbidden: violates PodSecurity "restricted:latest": …`;
/// None when the pod complies.
pub fn check_pod(level: &str, name: &str, spec: &Value) -> Option<String> {
    let violations = violations(level, spec);
    (!violations.is_empty()).then(|| {
        format!(
            "pods {name:?} is forbidden: violates PodSecurity \"{level}:latest\": {}",
            violations.join(", ")
        )
    })
}

const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[String]) -> String {
    if names.len() == 1 {
        format!("container {}", quoted(names))
    } else {
        format!("containers {}", quoted(names))
    }
}

fn violations(level: &str, spec: &Value) -> Vec<String> {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| spec[*l].as_array().into_iter().flatten())
        .collect();
    let name = |c: &Value| c["name"].as_str().unwrap_or_default().to_string();
    let those = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        containers
            .iter()
            .filter(|c| pred(c))
            .map(|c| name(c))
            .collect()
    };
    let mut out = Vec::new();

    // Baseline.
    let hosts: Vec<&str> = ["hostNetwork", "hostPID", "hostIPC"]
        .into_iter()
        .filter(|h| spec[*h].as_bool() == Some(true))
        .collect();
    if !hosts.is_empty() {
        let set: Vec<String> = hosts.iter().map(|h| format!("{h}=true")).collect();
        out.push(format!("host namespaces ({})", set.join(", ")));
    }
    let privileged = those(&|c| c["securityContext"]["privileged"].as_bool() == Some(true));
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            containers_phrase(&privileged)
        ));
    }
    for c in &containers {
        let added: Vec<String> = c["securityContext"]["capabilities"]["add"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .map(str::to_string)
            .collect();
        if !added.is_empty() {
            out.push(format!(
                "non-default capabilities (container {:?} must not include {} in securityContext.capabilities.add)",
                name(c),
                quoted(&added)
            ));
        }
    }
    let host_path: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| !v["hostPath"].is_null())
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect();
    if !host_path.is_empty() {
        out.push(format!("hostPath volumes (volumes {})", quoted(&host_path)));
    }
    let host_ports = those(&|c| {
        c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["hostPort"].as_i64().is_some_and(|h| h != 0))
    });
    if !host_ports.is_empty() {
        out.push(format!(
            "hostPort ({} uses hostPort)",
            containers_phrase(&host_ports)
        ));
    }
    if level != "restricted" {
        return out;
    }

    // Restricted.
    let escalation =
        those(&|c| c["securityContext"]["allowPrivilegeEscalation"].as_bool() != Some(false));
    if !escalation.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            containers_phrase(&escalation)
        ));
    }
    let no_drop = those(&|c| {
        !c["securityContext"]["capabilities"]["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d.as_str() == Some("ALL"))
    });
    if !no_drop.is_empty() {
        out.push(format!(
            "unrestricted capabilities ({} must set securityContext.capabilities.drop=[\"ALL\"])",
            containers_phrase(&no_drop)
        ));
    }
    let restricted_volumes: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v.as_object().is_some_and(|m| {
                m.keys()
                    .any(|k| k != "name" && !RESTRICTED_VOLUMES.contains(&k.as_str()))
            })
        })
        .map(|v| v["name"].as_str().unwrap_or_default().to_string())
        .collect();
    if !restricted_volumes.is_empty() {
        out.push(format!(
            "restricted volume types (volumes {})",
            quoted(&restricted_volumes)
        ));
    }
    let pod_non_root = spec["securityContext"]["runAsNonRoot"].as_bool();
    let root_explicit = those(&|c| c["securityContext"]["runAsNonRoot"].as_bool() == Some(false));
    let unset = those(&|c| c["securityContext"]["runAsNonRoot"].is_null());
    if !root_explicit.is_empty() || (pod_non_root != Some(true) && !unset.is_empty()) {
        let mut why = Vec::new();
        if pod_non_root == Some(false) {
            why.push("pod must not set securityContext.runAsNonRoot=false".to_string());
        }
        if !root_explicit.is_empty() {
            why.push(format!(
                "{} must not set securityContext.runAsNonRoot=false",
                containers_phrase(&root_explicit)
            ));
        }
        if pod_non_root != Some(true) && !unset.is_empty() {
            why.push(format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&unset)
            ));
        }
        out.push(format!("runAsNonRoot != true ({})", why.join("; ")));
    }
    let root_user = spec["securityContext"]["runAsUser"].as_i64() == Some(0)
        || containers
            .iter()
            .any(|c| c["securityContext"]["runAsUser"].as_i64() == Some(0));
    if root_user {
        out.push("runAsUser=0 (pod and containers must not set runAsUser=0)".into());
    }
    let allowed = |p: &Value| matches!(p["type"].as_str(), Some("RuntimeDefault" | "Localhost"));
    let pod_seccomp = allowed(&spec["securityContext"]["seccompProfile"]);
    let no_seccomp = those(&|c| {
        let own = &c["securityContext"]["seccompProfile"];
        if own.is_null() {
            !pod_seccomp
        } else {
            !allowed(own)
        }
    });
    if !no_seccomp.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            containers_phrase(&no_seccomp)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn restricted_container(name: &str) -> Value {
        json!({"name": name, "image": "x", "securityContext": {
            "allowPrivilegeEscalation": false, "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}})
    }

    #[test]
    fn a_compliant_pod_passes_restricted() {
        let spec = json!({"containers": [restricted_container("a")]});
        assert_eq!(check_pod("restricted", "p", &spec), None);
    }

    #[test]
    fn a_privileged_container_is_refused_by_baseline_and_restricted() {
        let mut c = restricted_container("a");
        c["securityContext"]["privileged"] = json!(true);
        let spec = json!({"containers": [c]});
        for level in ["baseline", "restricted"] {
            let message = check_pod(level, "p", &spec).expect("refused");
            assert!(
                message.contains(
                    "privileged (container \"a\" must not set securityContext.privileged=true)"
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn a_plain_container_breaks_restricted_only() {
        let spec = json!({"containers": [{"name": "a", "image": "x"}]});
        assert_eq!(check_pod("baseline", "p", &spec), None);
        let message = check_pod("restricted", "p", &spec).expect("refused");
        for part in [
            "allowPrivilegeEscalation != false",
            "unrestricted capabilities",
            "runAsNonRoot != true",
            "seccompProfile",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
    }
}
