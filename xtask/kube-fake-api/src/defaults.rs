//! The API server's defaulting (Kubernetes 1.32 `SetDefaults_*` for the
//! kinds deploys write), applied to every stored Deployment, ReplicaSet,
//! Pod and Service, so what clients read back is what a cluster returns:
//! `spec.replicas: 1`, the RollingUpdate strategy at 25 %, a pod spec's
//! restart and DNS policies, a container's `imagePullPolicy` (`Always`
//! for `:latest` or no tag, else `IfNotPresent`), probe timings, port
//! protocols, requests from limits; a Service's type, session affinity,
//! target ports, a cluster IP and, for NodePort and LoadBalancer, node
//! ports. kubectl relies on them (`kubectl describe deployment`
//! dereferences `spec.replicas`). Server-side apply does not give the
//! applier ownership of defaulted fields; only the list keys it needs to
//! merge by (a port's `protocol`) are defaulted in the configuration too
//! ([`keys`]).

use serde_json::{Map, Value, json};

/// Fills in what the API server defaults on an object of `kind`.
pub fn apply(kind: &str, obj: &mut Value) {
    match kind {
        "Deployment" => {
            let spec = object(&mut obj["spec"]);
            insert(spec, "replicas", json!(1));
            insert(spec, "revisionHistoryLimit", json!(10));
            insert(spec, "progressDeadlineSeconds", json!(600));
            let strategy = object(spec.entry("strategy").or_insert_with(|| json!({})));
            insert(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                insert(
                    strategy,
                    "rollingUpdate",
                    json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
                );
            }
            pod_spec(obj.pointer_mut("/spec/template/spec"));
        }
        "ReplicaSet" => {
            insert(object(&mut obj["spec"]), "replicas", json!(1));
            pod_spec(obj.pointer_mut("/spec/template/spec"));
        }
        "Pod" => pod_spec(obj.pointer_mut("/spec")),
        "Service" => service(obj),
        _ => {}
    }
}

/// The list keys a server-side apply configuration must carry to merge by:
/// a port's `protocol` (`TCP`), part of the key of container and Service
/// ports.
pub fn keys(kind: &str, obj: &mut Value) {
    // pointer_mut, not indexing: a partial configuration gains no fields.
    let pod = match kind {
        "Deployment" | "ReplicaSet" => obj.pointer_mut("/spec/template/spec"),
        "Pod" => obj.pointer_mut("/spec"),
        "Service" => {
            ports(obj.pointer_mut("/spec/ports"));
            return;
        }
        _ => return,
    };
    let Some(pod) = pod else { return };
    for list in ["containers", "initContainers"] {
        for c in pod
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            ports(c.get_mut("ports"));
        }
    }
}

fn ports(list: Option<&mut Value>) {
    for p in list.and_then(Value::as_array_mut).into_iter().flatten() {
        if let Some(p) = p.as_object_mut() {
            insert(p, "protocol", json!("TCP"));
        }
    }
}

/// `v` as an object, made one if it is not.
fn object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

fn insert(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

fn pod_spec(spec: Option<&mut Value>) {
    let Some(s) = spec.and_then(Value::as_object_mut) else {
        return;
    };
    insert(s, "restartPolicy", json!("Always"));
    insert(s, "terminationGracePeriodSeconds", json!(30));
    insert(s, "dnsPolicy", json!("ClusterFirst"));
    insert(s, "schedulerName", json!("default-scheduler"));
    insert(s, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        for c in s
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            container(c);
        }
    }
}

fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    insert(m, "terminationMessagePath", json!("/dev/termination-log"));
    insert(m, "terminationMessagePolicy", json!("File"));
    let image = m.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let latest = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    insert(
        m,
        "imagePullPolicy",
        json!(if latest { "Always" } else { "IfNotPresent" }),
    );
    for p in m
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object_mut() {
            insert(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = m.get_mut(probe).and_then(Value::as_object_mut) else {
            continue;
        };
        insert(p, "timeoutSeconds", json!(1));
        insert(p, "periodSeconds", json!(10));
        insert(p, "successThreshold", json!(1));
        insert(p, "failureThreshold", json!(3));
        if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
            insert(h, "scheme", json!("HTTP"));
        }
    }
    // Requests default to the limits they lack.
    if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = r.get("limits").and_then(Value::as_object).cloned()
    {
        let requests = object(r.entry("requests").or_insert_with(|| json!({})));
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
    for e in m
        .get_mut("env")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(f) = e
            .pointer_mut("/valueFrom/fieldRef")
            .and_then(Value::as_object_mut)
        {
            insert(f, "apiVersion", json!("v1"));
        }
    }
}

fn service(obj: &mut Value) {
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let s = object(&mut obj["spec"]);
    insert(s, "type", json!("ClusterIP"));
    let ty = s["type"].as_str().unwrap_or_default().to_string();
    if ty == "ExternalName" {
        return;
    }
    insert(s, "sessionAffinity", json!("None"));
    insert(s, "internalTrafficPolicy", json!("Cluster"));
    insert(s, "ipFamilies", json!(["IPv4"]));
    insert(s, "ipFamilyPolicy", json!("SingleStack"));
    // A stable address per service name, in the default service CIDR.
    let h = name
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let ip = format!("10.96.{}.{}", (h >> 8) % 256, h % 254 + 1);
    insert(s, "clusterIP", json!(ip));
    let cluster_ip = s["clusterIP"].clone();
    insert(s, "clusterIPs", json!([cluster_ip]));
    let exposed = ty == "NodePort" || ty == "LoadBalancer";
    if exposed {
        insert(s, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        insert(s, "allocateLoadBalancerNodePorts", json!(true));
    }
    for (i, p) in s
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(p) = p.as_object_mut() else { continue };
        insert(p, "protocol", json!("TCP"));
        let port = p.get("port").cloned().unwrap_or(Value::Null);
        insert(p, "targetPort", port);
        if exposed {
            let offset = u32::try_from(i).unwrap_or(0);
            insert(p, "nodePort", json!(30000 + (h + offset) % 2768));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_reads_back_as_a_cluster_returns_it() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "reg/a:1", "ports": [{"containerPort": 5000}],
             "readinessProbe": {"httpGet": {"path": "/readyz", "port": 5000}, "periodSeconds": 2},
             "resources": {"limits": {"cpu": "500m"}}},
            {"name": "b", "image": "busybox"}]}}}});
        apply("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c[1]["imagePullPolicy"], "Always");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(c[0]["readinessProbe"]["periodSeconds"], 2, "kept");
        assert_eq!(c[0]["readinessProbe"]["timeoutSeconds"], 1);
        assert_eq!(c[0]["resources"]["requests"]["cpu"], "500m");
        assert_eq!(d["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }

    #[test]
    fn a_load_balancer_gets_a_cluster_ip_target_ports_and_node_ports() {
        let mut s = json!({"metadata": {"name": "api"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        apply("Service", &mut s);
        let p = &s["spec"]["ports"][0];
        assert_eq!(p["targetPort"], 80);
        let node_port = p["nodePort"].as_u64().expect("node port");
        assert!((30000..=32767).contains(&node_port), "{node_port}");
        assert!(
            s["spec"]["clusterIP"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("10.96."))
        );
    }
}
