//! The API server's own validation of the kinds kube-mlops writes
//! (`pkg/apis/core/validation`, `pkg/apis/apps/validation`,
//! `pkg/apis/policy/validation`): rules no OpenAPI schema states, refused
//! with the causes and wording a real server gives.

use serde_json::{Value, json};

use crate::names;
use crate::status::Cause;

/// Why a write is refused before it is stored.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// 422: the object decodes but breaks the kind's rules.
    Invalid(Vec<Cause>),
    /// 400: the object does not decode (a quantity that does not parse).
    BadRequest(String),
}

/// The most a ConfigMap may hold (`core.MaxSecretSize`).
const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// Check `obj` of `kind` (its `apiVersion` group in `group`) as the API
/// server does on create (`old` None) or update (`old` the stored object).
pub fn validate(kind: &str, obj: &Value, old: Option<&Value>) -> Result<(), Refusal> {
    let mut v = Check::default();
    v.metadata(kind, obj);
    match kind {
        "Pod" => v.pod_spec("spec", &obj["spec"]),
        "Deployment" | "ReplicaSet" => v.deployment(obj, old),
        "Service" => v.service(&obj["spec"]),
        "ConfigMap" => {
            // The total of its data and binary data (base64-decoded), as
            // the API server counts it: at most 1 MiB.
            let size: usize = obj["data"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                .chain(
                    obj["binaryData"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| k.len() + v.as_str().map_or(0, |b| b.len() / 4 * 3)),
                )
                .sum();
            if size > MAX_CONFIG_MAP_BYTES {
                v.push(Cause::too_long("[]", MAX_CONFIG_MAP_BYTES));
            }
            for key in obj["data"]
                .as_object()
                .into_iter()
                .chain(obj["binaryData"].as_object())
                .flat_map(|m| m.keys())
            {
                for e in names::config_key(key) {
                    v.push(Cause::invalid(format!("data[{key}]"), json!(key), e));
                }
            }
        }
        "PodDisruptionBudget" => {
            let spec = &obj["spec"];
            if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
                v.push(Cause::invalid(
                    "spec",
                    Value::String("…".into()),
                    "minAvailable and maxUnavailable cannot be both set",
                ));
            }
            v.selector("spec.selector", &spec["selector"]);
        }
        "NetworkPolicy" => v.selector("spec.podSelector", &obj["spec"]["podSelector"]),
        "SeldonDeployment" => v.seldon_quantities(&obj["spec"]),
        "ClusterRoleBinding" => v.cluster_role_binding(obj, old),
        _ => {}
    }
    if let Some(q) = v.bad_quantity {
        return Err(Refusal::BadRequest(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: quantities must match the \
             regular expression '{}' (got {q:?})",
            version_of(obj),
            names::QUANTITY_PATTERN
        )));
    }
    if v.causes.is_empty() {
        Ok(())
    } else {
        Err(Refusal::Invalid(v.causes))
    }
}

fn version_of(obj: &Value) -> &str {
    let api_version = obj["apiVersion"].as_str().unwrap_or("v1");
    api_version.rsplit('/').next().unwrap_or(api_version)
}

#[derive(Default)]
struct Check {
    causes: Vec<Cause>,
    bad_quantity: Option<String>,
}

impl Check {
    fn push(&mut self, c: Cause) {
        self.causes.push(c);
    }

    /// Each problem `check` finds with `value` at `field`, as an Invalid cause.
    fn each(&mut self, field: &str, value: &str, check: fn(&str) -> Vec<String>) {
        for e in check(value) {
            self.push(Cause::invalid(field, json!(value), e));
        }
    }

    fn metadata(&mut self, kind: &str, obj: &Value) {
        let meta = &obj["metadata"];
        match meta["name"].as_str().filter(|n| !n.is_empty()) {
            None if meta["generateName"].as_str().is_none_or(str::is_empty) => self.push(
                Cause::required("metadata.name", "name or generateName is required"),
            ),
            None => {}
            Some(name) => {
                let check = match kind {
                    "Service" => names::dns1035_label,
                    "Namespace" => names::dns1123_label,
                    _ => names::dns1123_subdomain,
                };
                self.each("metadata.name", name, check);
            }
        }
        self.labels("metadata.labels", &meta["labels"]);
    }

    fn labels(&mut self, field: &str, labels: &Value) {
        let Some(labels) = labels.as_object() else {
            return;
        };
        for (k, v) in labels {
            self.each(field, k, names::label_key);
            self.each(field, v.as_str().unwrap_or_default(), names::label_value);
        }
    }

    fn selector(&mut self, field: &str, selector: &Value) {
        self.labels(&format!("{field}.matchLabels"), &selector["matchLabels"]);
        for (i, e) in selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let at = format!("{field}.matchExpressions[{i}]");
            let op = e["operator"].as_str().unwrap_or_default();
            let values = e["values"].as_array().map_or(0, Vec::len);
            match op {
                "In" | "NotIn" if values == 0 => self.push(Cause::required(
                    format!("{at}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                )),
                "Exists" | "DoesNotExist" if values > 0 => self.push(Cause::forbidden(
                    format!("{at}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => self.push(Cause::not_supported(
                    format!("{at}.operator"),
                    json!(other),
                    &["In", "NotIn", "Exists", "DoesNotExist"],
                )),
            }
        }
    }

    fn deployment(&mut self, obj: &Value, old: Option<&Value>) {
        let spec = &obj["spec"];
        if let Some(r) = spec["replicas"].as_i64().filter(|r| *r < 0) {
            self.push(Cause::invalid(
                "spec.replicas",
                json!(r),
                "must be greater than or equal to 0",
            ));
        }
        let selector = &spec["selector"];
        let empty = selector["matchLabels"]
            .as_object()
            .is_none_or(|m| m.is_empty())
            && selector["matchExpressions"]
                .as_array()
                .is_none_or(|m| m.is_empty());
        if selector.is_null() {
            self.push(Cause::required("spec.selector", ""));
        } else if empty {
            self.push(Cause::invalid(
                "spec.selector",
                selector.clone(),
                "empty selector is invalid for deployment",
            ));
        } else {
            self.selector("spec.selector", selector);
            let labels = &spec["template"]["metadata"]["labels"];
            if !selects(selector, labels) {
                self.push(Cause::invalid(
                    "spec.template.metadata.labels",
                    labels.clone(),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        if let Some(old) = old
            && !old["spec"]["selector"].is_null()
            && old["spec"]["selector"] != *selector
        {
            self.push(Cause::invalid(
                "spec.selector",
                selector.clone(),
                "field is immutable",
            ));
        }
        self.labels(
            "spec.template.metadata.labels",
            &spec["template"]["metadata"]["labels"],
        );
        let template = &spec["template"]["spec"];
        self.pod_spec("spec.template.spec", template);
        if let Some(policy) = template["restartPolicy"]
            .as_str()
            .filter(|p| *p != "Always")
        {
            self.push(Cause::not_supported(
                "spec.template.spec.restartPolicy",
                json!(policy),
                &["Always"],
            ));
        }
    }

    fn pod_spec(&mut self, at: &str, spec: &Value) {
        let containers = spec["containers"].as_array().filter(|c| !c.is_empty());
        if containers.is_none() {
            self.push(Cause::required(format!("{at}.containers"), ""));
        }
        let mut seen = Vec::new();
        for list in ["initContainers", "containers"] {
            for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
                self.container(&format!("{at}.{list}[{i}]"), c, &mut seen);
            }
        }
        for vol in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(q) = vol["emptyDir"]["sizeLimit"].as_str() {
                self.quantity(q);
            }
        }
    }

    fn container(&mut self, at: &str, c: &Value, seen: &mut Vec<String>) {
        match c["name"].as_str().filter(|n| !n.is_empty()) {
            None => self.push(Cause::required(format!("{at}.name"), "")),
            Some(name) => {
                self.each(&format!("{at}.name"), name, names::dns1123_label);
                if seen.iter().any(|s| s == name) {
                    self.push(Cause::duplicate(format!("{at}.name"), json!(name)));
                }
                seen.push(name.to_string());
            }
        }
        if let Some(policy) = c["imagePullPolicy"].as_str()
            && !["Always", "IfNotPresent", "Never"].contains(&policy)
        {
            self.push(Cause::not_supported(
                format!("{at}.imagePullPolicy"),
                json!(policy),
                &["Always", "IfNotPresent", "Never"],
            ));
        }
        if c["image"].as_str().is_none_or(|i| i.trim().is_empty()) {
            self.push(Cause::required(format!("{at}.image"), ""));
        }
        let mut port_names = Vec::new();
        for (i, p) in c["ports"].as_array().into_iter().flatten().enumerate() {
            let pat = format!("{at}.ports[{i}]");
            match p["containerPort"].as_i64() {
                None => self.push(Cause::required(format!("{pat}.containerPort"), "")),
                Some(n) => self.port_number(&format!("{pat}.containerPort"), n),
            }
            if let Some(n) = p["hostPort"].as_i64().filter(|n| *n != 0) {
                self.port_number(&format!("{pat}.hostPort"), n);
            }
            if let Some(name) = p["name"].as_str() {
                self.each(&format!("{pat}.name"), name, names::iana_svc_name);
                if port_names.contains(&name) {
                    self.push(Cause::duplicate(format!("{pat}.name"), json!(name)));
                }
                port_names.push(name);
            }
            self.protocol(&format!("{pat}.protocol"), &p["protocol"]);
        }
        for (i, e) in c["env"].as_array().into_iter().flatten().enumerate() {
            if e["name"].as_str().is_none_or(str::is_empty) {
                self.push(Cause::required(format!("{at}.env[{i}].name"), ""));
            }
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            let port = &c[probe]["httpGet"]["port"];
            let field = format!("{at}.{probe}.httpGet.port");
            match port {
                Value::Number(n) => self.port_number(&field, n.as_i64().unwrap_or(0)),
                Value::String(name) => self.each(&field, name, names::iana_svc_name),
                _ => {}
            }
        }
        self.resources(&format!("{at}.resources"), &c["resources"]);
    }

    fn resources(&mut self, at: &str, r: &Value) {
        let mut parsed = |m: &Value| -> Vec<(String, String, f64)> {
            m.as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| {
                    let text = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    match names::quantity(&text) {
                        Some(q) => Some((k.clone(), text, q)),
                        None => {
                            self.bad_quantity.get_or_insert(text);
                            None
                        }
                    }
                })
                .collect()
        };
        let limits = parsed(&r["limits"]);
        let requests = parsed(&r["requests"]);
        for (side, list) in [("limits", &limits), ("requests", &requests)] {
            for (name, text, _) in list.iter().filter(|(_, _, q)| *q < 0.0) {
                self.push(Cause::invalid(
                    format!("{at}.{side}[{name}]"),
                    json!(text),
                    "must be greater than or equal to 0",
                ));
            }
        }
        for (name, text, request) in &requests {
            if let Some((_, limit_text, limit)) = limits.iter().find(|(k, ..)| k == name)
                && request > limit
            {
                self.push(Cause::invalid(
                    format!("{at}.requests"),
                    json!(text),
                    format!("must be less than or equal to {name} limit of {limit_text}"),
                ));
            }
        }
    }

    /// A ClusterRoleBinding as the RBAC validation holds it: it binds a
    /// ClusterRole, never changes which, and a ServiceAccount subject
    /// names its namespace.
    fn cluster_role_binding(&mut self, obj: &Value, old: Option<&Value>) {
        let role = &obj["roleRef"];
        if let Some(kind) = role["kind"].as_str()
            && kind != "ClusterRole"
        {
            self.push(Cause::not_supported(
                "roleRef.kind",
                json!(kind),
                &["ClusterRole"],
            ));
        }
        if let Some(old) = old
            && old["roleRef"] != *role
        {
            self.push(Cause::invalid(
                "roleRef",
                role.clone(),
                "cannot change roleRef",
            ));
        }
        for (i, subject) in obj["subjects"].as_array().into_iter().flatten().enumerate() {
            if subject["kind"] == "ServiceAccount"
                && subject["namespace"].as_str().is_none_or(str::is_empty)
            {
                self.push(Cause::required(format!("subjects[{i}].namespace"), ""));
            }
        }
    }

    /// The quantities in a SeldonDeployment's embedded PodSpecs: the CRD's
    /// schema (controller-gen's) gives each the pattern of a Quantity, so
    /// the API server refuses one that does not match it, as a CRD
    /// validation error (the PodSpec's other rules are the operator's).
    fn seldon_quantities(&mut self, spec: &Value) {
        let items = |v: &Value| v.as_array().cloned().unwrap_or_default();
        for (p, predictor) in items(&spec["predictors"]).iter().enumerate() {
            for (c, component) in items(&predictor["componentSpecs"]).iter().enumerate() {
                let pod = &component["spec"];
                for list in ["initContainers", "containers"] {
                    for (i, container) in items(&pod[list]).iter().enumerate() {
                        for side in ["limits", "requests"] {
                            for (name, value) in container["resources"][side]
                                .as_object()
                                .into_iter()
                                .flatten()
                            {
                                let text = match value {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                if names::quantity(&text).is_none() {
                                    let field = format!(
                                        "spec.predictors[{p}].componentSpecs[{c}].spec.{list}[{i}].resources.{side}.{name}"
                                    );
                                    let detail = format!(
                                        "{field} in body should match '{}'",
                                        names::QUANTITY_PATTERN
                                    );
                                    self.push(Cause::invalid(field, json!(text), detail));
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn quantity(&mut self, text: &str) {
        if names::quantity(text).is_none() {
            self.bad_quantity.get_or_insert(text.to_string());
        }
    }

    fn port_number(&mut self, field: &str, n: i64) {
        if !(1..=65535).contains(&n) {
            self.push(Cause::invalid(
                field,
                json!(n),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }

    fn protocol(&mut self, field: &str, protocol: &Value) {
        if let Some(p) = protocol.as_str()
            && !matches!(p, "TCP" | "UDP" | "SCTP")
        {
            self.push(Cause::not_supported(
                field,
                json!(p),
                &["SCTP", "TCP", "UDP"],
            ));
        }
    }

    fn service(&mut self, spec: &Value) {
        let kind = spec["type"].as_str().unwrap_or("ClusterIP");
        if !matches!(
            kind,
            "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
        ) {
            self.push(Cause::not_supported(
                "spec.type",
                json!(kind),
                &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
            ));
        }
        self.labels("spec.selector", &spec["selector"]);
        let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        let headless = spec["clusterIP"].as_str() == Some("None");
        if ports.is_empty() && kind != "ExternalName" && !headless {
            self.push(Cause::required("spec.ports", ""));
        }
        let mut names_seen = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            let at = format!("spec.ports[{i}]");
            match p["name"].as_str().filter(|n| !n.is_empty()) {
                None if ports.len() > 1 => self.push(Cause::required(format!("{at}.name"), "")),
                None => {}
                Some(name) => {
                    self.each(&format!("{at}.name"), name, names::dns1123_label);
                    if names_seen.contains(&name) {
                        self.push(Cause::duplicate(format!("{at}.name"), json!(name)));
                    }
                    names_seen.push(name);
                }
            }
            match p["port"].as_i64() {
                None => self.push(Cause::required(format!("{at}.port"), "")),
                Some(n) => self.port_number(&format!("{at}.port"), n),
            }
            match &p["targetPort"] {
                Value::Number(n) => {
                    self.port_number(&format!("{at}.targetPort"), n.as_i64().unwrap_or(0));
                }
                Value::String(name) => {
                    self.each(&format!("{at}.targetPort"), name, names::iana_svc_name);
                }
                _ => {}
            }
            self.protocol(&format!("{at}.protocol"), &p["protocol"]);
        }
    }
}

/// Whether a LabelSelector (`matchLabels` and `matchExpressions`) selects
/// an object with `labels`.
pub fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels[k].as_str();
    let by_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str());
    let by_expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => label(key).is_some_and(|l| values.contains(&l)),
                Some("NotIn") => label(key).is_none_or(|l| !values.contains(&l)),
                Some("Exists") => label(key).is_some(),
                Some("DoesNotExist") => label(key).is_none(),
                _ => false,
            }
        });
    by_labels && by_expressions
}
