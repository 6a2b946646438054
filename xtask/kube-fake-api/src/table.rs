//! Server-side printing: a `meta.k8s.io/v1` `Table` for a client that
//! asks for one (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`,
//! as `kubectl get` does), with the columns a 1.32 server prints for the
//! kinds deploys make (Deployments' READY, UP-TO-DATE, AVAILABLE; pods'
//! READY, STATUS, RESTARTS; Services' TYPE, CLUSTER-IP, EXTERNAL-IP,
//! PORT(S); namespaces' STATUS), NAME and AGE for the rest.

use serde_json::{Value, json};

/// Whether the client asked for a Table.
pub fn wanted(accept: &str) -> bool {
    accept.contains("as=Table")
}

/// `answer` (an object or a list) as a Table.
pub fn of(answer: &Value) -> Value {
    let (items, kind): (Vec<&Value>, String) = match answer["items"].as_array() {
        Some(items) => (
            items.iter().collect(),
            answer["kind"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches("List")
                .to_string(),
        ),
        None => (
            vec![answer],
            answer["kind"].as_str().unwrap_or_default().to_string(),
        ),
    };
    let columns: Vec<Value> = columns(&kind)
        .iter()
        .map(|(name, ty)| {
            json!({"name": name, "type": ty, "format": if *name == "Name" { "name" } else { "" },
                "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            json!({"cells": cells(&kind, o),
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"]}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": answer["metadata"]["resourceVersion"]},
        "columnDefinitions": columns, "rows": rows})
}

fn columns(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "Deployment" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "string"),
            ("Available", "string"),
            ("Age", "string"),
        ],
        "ReplicaSet" => &[
            ("Name", "string"),
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
            ("Age", "string"),
        ],
        "Pod" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
        ],
        "Service" => &[
            ("Name", "string"),
            ("Type", "string"),
            ("Cluster-IP", "string"),
            ("External-IP", "string"),
            ("Port(s)", "string"),
            ("Age", "string"),
        ],
        "Namespace" => &[("Name", "string"), ("Status", "string"), ("Age", "string")],
        _ => &[("Name", "string"), ("Age", "string")],
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(o["metadata"]["name"]);
    let age = json!(age(o["metadata"]["creationTimestamp"].as_str()));
    let (spec, status) = (&o["spec"], &o["status"]);
    match kind {
        "Deployment" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(&status["readyReplicas"]),
                int(&spec["replicas"])
            )),
            json!(int(&status["updatedReplicas"]).to_string()),
            json!(int(&status["availableReplicas"]).to_string()),
            age,
        ],
        "ReplicaSet" => vec![
            name,
            json!(int(&spec["replicas"])),
            json!(int(&status["replicas"])),
            json!(int(&status["readyReplicas"])),
            age,
        ],
        "Pod" => {
            let statuses = status["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ready = statuses.iter().filter(|c| c["ready"] == true).count();
            let total = spec["containers"].as_array().map_or(0, Vec::len);
            let restarts: i64 = statuses.iter().map(|c| int(&c["restartCount"])).sum();
            let waiting = statuses
                .iter()
                .find_map(|c| c["state"]["waiting"]["reason"].as_str());
            let phase = if o["metadata"].get("deletionTimestamp").is_some() {
                "Terminating"
            } else {
                waiting.or(status["phase"].as_str()).unwrap_or("Pending")
            };
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(phase),
                json!(restarts.to_string()),
                age,
            ]
        }
        "Service" => {
            let ty = spec["type"].as_str().unwrap_or("ClusterIP");
            let external = match status["loadBalancer"]["ingress"][0]["ip"].as_str() {
                Some(ip) => ip.to_string(),
                None if ty == "LoadBalancer" => "<pending>".into(),
                None => "<none>".into(),
            };
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let protocol = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_i64() {
                        Some(n) => format!("{}:{n}/{protocol}", int(&p["port"])),
                        None => format!("{}/{protocol}", int(&p["port"])),
                    }
                })
                .collect();
            vec![
                name,
                json!(ty),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!(external),
                json!(ports.join(",")),
                age,
            ]
        }
        "Namespace" => vec![
            name,
            json!(status["phase"].as_str().unwrap_or("Active")),
            age,
        ],
        _ => vec![name, age],
    }
}

/// How long ago `since` (RFC 3339) was, as kubectl shows ages: `42s`,
/// `7m`, `5h`, `3d`; `<unknown>` without a time.
fn age(since: Option<&str>) -> String {
    let Some(t) = since.and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok()) else {
        return "<unknown>".into();
    };
    let secs = k8s_openapi::jiff::Timestamp::now()
        .duration_since(t)
        .as_secs()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_list_prints_as_kubectl_get_shows_it() {
        let list = json!({"kind": "DeploymentList", "metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "api", "creationTimestamp": "2020-01-01T00:00:00Z"},
             "spec": {"replicas": 2}, "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}}]});
        let t = of(&list);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][1]["name"], "Ready");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "api");
        assert_eq!(cells[1], "1/2");
        assert!(
            cells[4].as_str().is_some_and(|a| a.ends_with('d')),
            "{cells}"
        );
    }
}
