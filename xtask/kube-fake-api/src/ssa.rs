//! Field ownership as the API server keeps it in `metadata.managedFields`
//! (structured-merge-diff's rules, for what the fake serves):
//!
//! - **Server-side apply** ([`apply`]): the applier owns exactly the fields
//!   of its configuration. A field another manager owns with a *different*
//!   value is a conflict (409, `Apply failed with N conflict(s): conflict
//!   with "kubectl-scale" with subresource "scale" using apps/v1 at …:
//!   .spec.replicas`), unless forced, which takes it over; an *equal* value
//!   is co-owned without conflict. A field the applier owned and no longer
//!   sends is removed, unless someone else owns it too.
//! - **Updates** ([`update`]: create, replace, merge / JSON / strategic
//!   merge patches, the `scale` subresource): the writer takes the fields it
//!   changed from everyone, without conflicts, as an `Update` entry.
//! - **Lists by their schema** ([`Types`]): `x-kubernetes-list-type: map`
//!   lists (containers, env, volumes by `name`; container ports by
//!   `containerPort` and `protocol`) merge item by item under their keys
//!   (`k:{"name":"api"}`), `set` lists by value, the rest are atomic; maps
//!   merge key by key. Without a schema (custom resources here) lists are
//!   atomic and maps granular, as for a CRD's `x-kubernetes-preserve-unknown-fields`.
//! - **Strategic merge patch** ([`strategic_merge`]): lists with a patch
//!   merge key merge by it; `$patch: delete` removes an item; `null`
//!   removes a field; `$setElementOrder`/`$retainKeys` directives are dropped.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// One step of a field path, as `fieldsV1` spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pe {
    /// `f:<name>`: a field of a struct or a key of a map.
    Field(String),
    /// `k:{…}`: the item of a map-type list with these key fields (JSON,
    /// fields sorted).
    Key(String),
    /// `v:<json>`: the item of a set-type list equal to this value.
    Value(String),
    /// `.`: the list item itself (its existence), under a `Key` or `Value`.
    Item,
}

/// A field path from the object's root.
pub type Path = Vec<Pe>;

/// The Kubernetes type information the rules need: the schema
/// definitions (`$defs` of the 1.32 OpenAPI schemas) and a node in them.
#[derive(Clone, Copy)]
pub struct Types<'a> {
    defs: Option<&'a Value>,
    node: Option<&'a Value>,
}

/// How a list merges.
#[derive(Debug, PartialEq)]
enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

impl<'a> Types<'a> {
    /// The type at the root of an object of the definition `node`, or none
    /// (every list atomic, every map granular).
    pub fn new(defs: Option<&'a Value>, node: Option<&'a Value>) -> Self {
        let mut t = Self { defs, node };
        t.node = t.resolve(node);
        t
    }

    fn resolve(&self, mut node: Option<&'a Value>) -> Option<&'a Value> {
        for _ in 0..16 {
            let reference = node?.get("$ref").and_then(Value::as_str);
            match reference {
                Some(r) => node = self.defs?.get(r.strip_prefix("#/$defs/")?),
                None => return node,
            }
        }
        node
    }

    fn at(&self, node: Option<&'a Value>) -> Self {
        Self {
            defs: self.defs,
            node: self.resolve(node),
        }
    }

    /// The type of field `name` of this struct, or of this map's values.
    fn field(&self, name: &str) -> Self {
        let node = self.node.and_then(|n| {
            n.get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
        });
        self.at(node)
    }

    /// The type of this list's items.
    fn items(&self) -> Self {
        self.at(self.node.and_then(|n| n.get("items")))
    }

    fn list_type(&self) -> ListType {
        let Some(n) = self.node else {
            return ListType::Atomic;
        };
        let keys = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        };
        match n.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => ListType::Map(keys(n.get("x-kubernetes-list-map-keys"))),
            Some("set") => ListType::Set,
            Some(_) => ListType::Atomic,
            None => match (
                n.get("x-kubernetes-patch-strategy").and_then(Value::as_str),
                n.get("x-kubernetes-patch-merge-key")
                    .and_then(Value::as_str),
            ) {
                (Some(s), Some(key)) if s.contains("merge") => ListType::Map(vec![key.into()]),
                (Some(s), None) if s.contains("merge") => ListType::Set,
                _ => ListType::Atomic,
            },
        }
    }

    /// The strategic-merge-patch key of this list, if it merges by one.
    fn patch_merge_key(&self) -> Option<&'a str> {
        let n = self.node?;
        let merges = n
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("merge"));
        merges
            .then(|| {
                n.get("x-kubernetes-patch-merge-key")
                    .and_then(Value::as_str)
            })
            .flatten()
    }
}

/// The key of a map-list item: its key fields as JSON, sorted.
fn item_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    let mut sorted: Vec<&String> = keys.iter().collect();
    sorted.sort();
    for k in sorted {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    Value::Object(m).to_string()
}

/// The metadata fields a manager can own.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Every field `obj` sets, as leaf paths (and `.` for list items).
pub fn fields(obj: &Value, types: Types<'_>) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    for (k, v) in obj.as_object().into_iter().flatten() {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                let meta = types.field("metadata");
                for (mk, mv) in v.as_object().into_iter().flatten() {
                    if OWNED_METADATA.contains(&mk.as_str()) {
                        let path = vec![Pe::Field(k.clone()), Pe::Field(mk.clone())];
                        walk(mv, meta.field(mk), path, &mut out);
                    }
                }
            }
            _ => walk(v, types.field(k), vec![Pe::Field(k.clone())], &mut out),
        }
    }
    out
}

fn walk(v: &Value, t: Types<'_>, path: Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(Pe::Field(k.clone()));
                walk(child, t.field(k), p, out);
            }
        }
        Value::Array(items) => match t.list_type() {
            ListType::Map(keys) if items.iter().all(Value::is_object) => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Pe::Key(item_key(item, &keys)));
                    let mut presence = p.clone();
                    presence.push(Pe::Item);
                    out.insert(presence);
                    walk(item, t.items(), p, out);
                }
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Pe::Value(item.to_string()));
                    out.insert(p);
                }
            }
            _ => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The value at `path` in `obj`, if set.
fn value_at<'v>(obj: &'v Value, path: &[Pe], types: Types<'_>) -> Option<&'v Value> {
    let mut v = obj;
    let mut t = types;
    for pe in path {
        match pe {
            Pe::Field(name) => {
                v = v.get(name)?;
                t = t.field(name);
            }
            Pe::Key(key) => {
                let ListType::Map(keys) = t.list_type() else {
                    return None;
                };
                v = v.as_array()?.iter().find(|i| item_key(i, &keys) == *key)?;
                t = t.items();
            }
            Pe::Value(json) => {
                let item: Value = serde_json::from_str(json).ok()?;
                v = v.as_array()?.iter().find(|i| **i == item)?;
            }
            Pe::Item => {}
        }
    }
    Some(v)
}

/// Removes what `path` names from `obj`: a field, or a list item.
fn remove_at(obj: &mut Value, path: &[Pe], types: Types<'_>) {
    let path = match path.last() {
        Some(Pe::Item) => &path[..path.len() - 1],
        _ => path,
    };
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    let mut t = types;
    for pe in parent {
        let next = match pe {
            Pe::Field(name) => {
                let next = v.get_mut(name);
                t = t.field(name);
                next
            }
            Pe::Key(key) => {
                let ListType::Map(keys) = t.list_type() else {
                    return;
                };
                t = t.items();
                v.as_array_mut()
                    .and_then(|a| a.iter_mut().find(|i| item_key(i, &keys) == *key))
            }
            Pe::Value(_) | Pe::Item => None,
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    match last {
        Pe::Field(name) => {
            if let Some(m) = v.as_object_mut() {
                m.remove(name);
            }
        }
        Pe::Key(key) => {
            if let (ListType::Map(keys), Some(a)) = (t.list_type(), v.as_array_mut()) {
                a.retain(|i| item_key(i, &keys) != *key);
            }
        }
        Pe::Value(json) => {
            let item: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            if let Some(a) = v.as_array_mut() {
                a.retain(|i| *i != item);
            }
        }
        Pe::Item => {}
    }
}

/// `config` merged into `live` as apply merges: maps key by key, map-type
/// lists item by item, sets by value, everything else replaced.
fn merge(live: &Value, config: &Value, t: Types<'_>) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, cv, t.field(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => match t.list_type() {
            ListType::Map(keys) => {
                let mut out = l.clone();
                for item in c {
                    let key = item_key(item, &keys);
                    match out.iter_mut().find(|i| item_key(i, &keys) == key) {
                        Some(existing) => *existing = merge(existing, item, t.items()),
                        None => out.push(item.clone()),
                    }
                }
                Value::Array(out)
            }
            ListType::Set => {
                let mut out = l.clone();
                for item in c {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Atomic => config.clone(),
        },
        _ => config.clone(),
    }
}

/// One `metadata.managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: String,
    fields: BTreeSet<Path>,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// The manager as the API server names it in a conflict (`printManager`).
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
            if !self.time.is_empty() {
                s.push_str(&format!(" at {}", self.time));
            }
        }
        s
    }

    fn to_json(&self) -> Value {
        let mut e = json!({"manager": self.manager, "operation": self.operation,
            "apiVersion": self.api_version, "time": self.time, "fieldsType": "FieldsV1",
            "fieldsV1": encode(&self.fields)});
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o["metadata"]["managedFields"].as_array())
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            Entry {
                manager: s("manager"),
                operation: s("operation"),
                api_version: s("apiVersion"),
                subresource: s("subresource"),
                time: s("time"),
                fields: decode(&e["fieldsV1"]),
            }
        })
        .collect()
}

/// A set of paths as a `fieldsV1` trie.
fn encode(paths: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for pe in path {
            let key = match pe {
                Pe::Field(f) => format!("f:{f}"),
                Pe::Key(k) => format!("k:{k}"),
                Pe::Value(v) => format!("v:{v}"),
                Pe::Item => ".".to_string(),
            };
            node = node
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("trie nodes are objects");
        }
    }
    Value::Object(root)
}

/// A `fieldsV1` trie as a set of paths (its leaves).
fn decode(trie: &Value) -> BTreeSet<Path> {
    fn go(node: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
        let Some(m) = node.as_object() else { return };
        if m.is_empty() && !path.is_empty() {
            out.insert(path.clone());
            return;
        }
        for (k, child) in m {
            let pe = if k == "." {
                Pe::Item
            } else if let Some(f) = k.strip_prefix("f:") {
                Pe::Field(f.into())
            } else if let Some(key) = k.strip_prefix("k:") {
                Pe::Key(key.into())
            } else if let Some(v) = k.strip_prefix("v:") {
                Pe::Value(v.into())
            } else {
                continue;
            };
            path.push(pe);
            go(child, path, out);
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    go(trie, &mut Vec::new(), &mut out);
    out
}

/// A path as the API server prints it: `.spec.template.spec.containers[name="api"].image`.
pub fn display(path: &[Pe]) -> String {
    let mut s = String::new();
    for pe in path {
        match pe {
            Pe::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Pe::Key(k) => {
                let fields: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                s.push_str(&format!("[{}]", fields.join(",")));
            }
            Pe::Value(v) => s.push_str(&format!("[={v}]")),
            Pe::Item => {}
        }
    }
    s
}

/// Apply conflicts: per conflicting path, whose it is.
#[derive(Debug)]
pub struct Conflicts(Vec<(String, String)>);

impl Conflicts {
    /// The 409 message of the API server (`getConflictMessage`).
    pub fn message(&self) -> String {
        if let [(manager, path)] = self.0.as_slice() {
            return format!("Apply failed with 1 conflict: conflict with {manager}: {path}");
        }
        let mut managers: Vec<&String> = self.0.iter().map(|(m, _)| m).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for (_, p) in self.0.iter().filter(|(o, _)| o == m) {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }

    /// The `details.causes` of the 409: one `FieldManagerConflict` per path.
    pub fn causes(&self) -> Vec<Value> {
        self.0
            .iter()
            .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": p}))
            .collect()
    }
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The annotation `kubectl apply` (client-side) keeps what it applied in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The field manager of `kubectl apply` (client-side).
const CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";

/// Server-side apply of `config` by `manager` to `live` (None: it creates
/// the object): the object to store, with its `managedFields`, or the
/// conflicts when not `force`d.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    types: Types<'_>,
) -> Result<Value, Conflicts> {
    let mut entries = entries(live);
    let wanted = fields(config, types);
    let empty = Value::Null;
    let live_obj = live.unwrap_or(&empty);
    let mut conflicts = Vec::new();
    let mut taken = BTreeSet::new();
    // Whether every conflict is with what `kubectl apply` (client-side)
    // last applied, which the API server lets an apply take over
    // (its lastAppliedManager): moving to server-side apply conflicts with
    // nothing the user applied before.
    let last_applied = live
        .and_then(|l| l["metadata"]["annotations"][LAST_APPLIED].as_str())
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .map(|last| fields(&last, types));
    let mut from_last_applied = true;
    for e in entries.iter().filter(|e| !e.is(manager, "Apply", "")) {
        for p in wanted.intersection(&e.fields) {
            if p.last() == Some(&Pe::Item) {
                continue;
            }
            if value_at(live_obj, p, types) != value_at(config, p, types) {
                conflicts.push((e.describe(), display(p)));
                taken.insert(p.clone());
                from_last_applied &= e.is(CLIENT_SIDE_APPLY, "Update", "")
                    && last_applied.as_ref().is_some_and(|l| l.contains(p));
            }
        }
    }
    if !conflicts.is_empty() && !force && !from_last_applied {
        return Err(Conflicts(conflicts));
    }
    for e in entries.iter_mut().filter(|e| !e.is(manager, "Apply", "")) {
        e.fields.retain(|p| !taken.contains(p));
    }
    let mut obj = match live {
        Some(l) => l.clone(),
        None => json!({}),
    };
    let had: BTreeSet<Path> = entries
        .iter()
        .find(|e| e.is(manager, "Apply", ""))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: BTreeSet<&Path> = entries
        .iter()
        .filter(|e| !e.is(manager, "Apply", ""))
        .flat_map(|e| e.fields.iter())
        .collect();
    // Deepest first, so a field goes before the item that held it.
    for dropped in had
        .difference(&wanted)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let item = match dropped.last() {
            Some(Pe::Item) => &dropped[..dropped.len() - 1],
            _ => &dropped[..],
        };
        let kept = others
            .iter()
            .any(|o| o.starts_with(item) || item.starts_with(o));
        if kept {
            continue;
        }
        remove_at(&mut obj, dropped, types);
        // A list or map left empty that nobody sets goes too (`env: []`).
        let mut parent = item[..item.len().saturating_sub(1)].to_vec();
        if matches!(parent.last(), Some(Pe::Key(_) | Pe::Value(_))) {
            parent.pop();
        }
        while !parent.is_empty() {
            let empty = value_at(&obj, &parent, types).is_some_and(|v| {
                v.as_array().is_some_and(Vec::is_empty) || v.as_object().is_some_and(Map::is_empty)
            });
            let set = wanted
                .iter()
                .chain(others.iter().copied())
                .any(|p| p.starts_with(&parent));
            if !empty || set {
                break;
            }
            remove_at(&mut obj, &parent, types);
            parent.pop();
            if matches!(parent.last(), Some(Pe::Key(_) | Pe::Value(_))) {
                parent.pop();
            }
        }
    }
    let mut merged = merge(&obj, config, types);
    // What the server keeps, whatever the configuration says.
    if let Some(l) = live {
        for k in ["uid", "resourceVersion", "generation", "creationTimestamp"] {
            if let Some(v) = l["metadata"].get(k) {
                merged["metadata"][k] = v.clone();
            }
        }
        if let Some(status) = l.get("status") {
            merged["status"] = status.clone();
        }
    }
    let time = crate::controllers::now();
    match entries.iter_mut().find(|e| e.is(manager, "Apply", "")) {
        Some(e) => {
            e.fields = wanted;
            e.api_version = api_version.into();
            e.time = time;
        }
        None => entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            api_version: api_version.into(),
            subresource: String::new(),
            time,
            fields: wanted,
        }),
    }
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// `new`, written by an update of `manager` (through `subresource`, "" for
/// the object itself) over `live` (None: a create), with the fields it
/// changed or removed taken from every other manager.
pub fn update(
    live: Option<&Value>,
    mut new: Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    types: Types<'_>,
) -> Value {
    let mut entries = entries(live);
    let after = fields(&new, types);
    let before = live.map(|l| fields(l, types)).unwrap_or_default();
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|p| match live {
            None => true,
            Some(l) => !before.contains(*p) || value_at(l, p, types) != value_at(&new, p, types),
        })
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = before.difference(&after).cloned().collect();
    for e in entries
        .iter_mut()
        .filter(|e| !e.is(manager, "Update", subresource))
    {
        e.fields
            .retain(|p| !changed.contains(p) && !removed.contains(p));
    }
    if !changed.is_empty() {
        let time = crate::controllers::now();
        match entries
            .iter_mut()
            .find(|e| e.is(manager, "Update", subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.fields.retain(|p| !removed.contains(p));
                e.time = time;
                e.api_version = api_version.into();
            }
            None => entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                subresource: subresource.into(),
                time,
                fields: changed,
            }),
        }
    }
    write_entries(&mut new, &entries);
    new
}

/// `patch` applied to `live` as a strategic merge patch.
pub fn strategic_merge(live: &Value, patch: &Value, t: Types<'_>) -> Value {
    match (live, patch) {
        (Value::Object(l), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut out = p.clone();
                out.remove("$patch");
                return Value::Object(out);
            }
            let mut out = l.clone();
            for (k, pv) in p {
                if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
                    continue;
                }
                if pv.is_null() {
                    out.remove(k);
                    continue;
                }
                let merged = match l.get(k) {
                    Some(lv) => strategic_merge(lv, pv, t.field(k)),
                    None => strip_directives(pv),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(p)) => match t.patch_merge_key() {
            Some(key) => {
                let mut out = l.clone();
                for item in p {
                    let k = item.get(key);
                    let at = out.iter().position(|i| i.get(key) == k);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (at, delete) {
                        (Some(i), true) => {
                            out.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => out[i] = strategic_merge(&out[i], item, t.items()),
                        (None, false) => out.push(strip_directives(item)),
                    }
                }
                Value::Array(out)
            }
            None if t.list_type() == ListType::Set => {
                let mut out = l.clone();
                for item in p {
                    if !out.contains(item) {
                        out.push(item.clone());
                    }
                }
                Value::Array(out)
            }
            None => patch.clone(),
        },
        _ => strip_directives(patch),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough of the Deployment schema for the rules: containers keyed by
    /// name, their env by name and ports by containerPort and protocol.
    fn defs() -> Value {
        json!({
            "Deployment": {"properties": {"metadata": {"$ref": "#/$defs/Meta"}, "spec": {"$ref": "#/$defs/Spec"}}},
            "Meta": {"properties": {"labels": {"additionalProperties": {"type": "string"}},
                "finalizers": {"items": {"type": "string"}, "x-kubernetes-list-type": "set"}}},
            "Spec": {"properties": {"replicas": {"type": "integer"},
                "template": {"properties": {"spec": {"$ref": "#/$defs/PodSpec"}}}}},
            "PodSpec": {"properties": {"containers": {"items": {"$ref": "#/$defs/Container"},
                "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge"}}},
            "Container": {"properties": {"name": {"type": "string"}, "image": {"type": "string"},
                "args": {"items": {"type": "string"}},
                "env": {"items": {"type": "object"}, "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"], "x-kubernetes-patch-merge-key": "name",
                    "x-kubernetes-patch-strategy": "merge"},
                "ports": {"items": {"type": "object"}, "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["containerPort", "protocol"]}}}
        })
    }

    fn types(defs: &Value) -> Types<'_> {
        Types::new(Some(defs), defs.get("Deployment"))
    }

    fn deployment(replicas: i64, containers: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}}})
    }

    #[test]
    fn containers_merge_by_name_and_are_owned_per_item() {
        let d = defs();
        let t = types(&d);
        let mine = deployment(1, json!([{"name": "api", "image": "a:1"}]));
        let live = apply(None, &mine, "kube-mlops", false, "apps/v1", t).expect("create");
        let side = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api"},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "s:1"}]}}}});
        let live = apply(Some(&live), &side, "mesh", false, "apps/v1", t).expect("no overlap");
        let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["api", "sidecar"], "merged by key, not replaced");
        let trie = &live["metadata"]["managedFields"][1]["fieldsV1"];
        assert!(
            trie["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"sidecar\"}"]["."]
                .is_object(),
            "{trie}"
        );
    }

    #[test]
    fn equal_values_are_co_owned_and_different_ones_conflict() {
        let d = defs();
        let t = types(&d);
        let mine = deployment(1, json!([{"name": "api", "image": "a:1"}]));
        let live = apply(None, &mine, "kube-mlops", false, "apps/v1", t).expect("create");
        let same = apply(Some(&live), &mine, "other", false, "apps/v1", t).expect("equal values");
        let other = deployment(3, json!([{"name": "api", "image": "a:1"}]));
        let err = apply(Some(&same), &other, "other", false, "apps/v1", t)
            .expect_err("replicas differ from what kube-mlops set");
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kube-mlops\": .spec.replicas"
        );
        let forced = apply(Some(&same), &other, "other", true, "apps/v1", t).expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let ours = &forced["metadata"]["managedFields"][0];
        assert_eq!(ours["manager"], "kube-mlops");
        assert!(
            ours["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
            "{ours}"
        );
        assert!(
            ours["fieldsV1"]["f:spec"]["f:template"].is_object(),
            "co-owned fields stay: {ours}"
        );
    }

    #[test]
    fn an_update_takes_fields_and_then_conflicts_with_an_apply() {
        let d = defs();
        let t = types(&d);
        let mine = deployment(1, json!([{"name": "api", "image": "a:1"}]));
        let live = apply(None, &mine, "kube-mlops", false, "apps/v1", t).expect("create");
        let mut scaled = live.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaled = update(Some(&live), scaled, "kubectl-scale", "scale", "apps/v1", t);
        let err = apply(Some(&scaled), &mine, "kube-mlops", false, "apps/v1", t)
            .expect_err("kubectl scale owns replicas now");
        let message = err.message();
        assert!(
            message.starts_with(
                "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1 at "
            ) && message.ends_with(": .spec.replicas"),
            "{message}"
        );
    }

    #[test]
    fn a_field_the_applier_stops_sending_is_removed_unless_shared() {
        let d = defs();
        let t = types(&d);
        let with_env = deployment(
            1,
            json!([{"name": "api", "image": "a:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]),
        );
        let live = apply(None, &with_env, "kube-mlops", false, "apps/v1", t).expect("create");
        let without_b = deployment(
            1,
            json!([{"name": "api", "image": "a:1", "env": [{"name": "A", "value": "1"}]}]),
        );
        let live2 =
            apply(Some(&live), &without_b, "kube-mlops", false, "apps/v1", t).expect("apply");
        let env = &live2["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name": "A", "value": "1"}]));
        // The last one too: no `env: []` is left behind.
        let no_env = deployment(1, json!([{"name": "api", "image": "a:1"}]));
        let bare = apply(Some(&live2), &no_env, "kube-mlops", false, "apps/v1", t).expect("apply");
        let container = &bare["spec"]["template"]["spec"]["containers"][0];
        assert!(container.get("env").is_none(), "{container}");
        // Stop sending replicas while another manager co-owns it: it stays.
        let shared = apply(Some(&live2), &without_b, "other", false, "apps/v1", t).expect("co-own");
        let mut no_replicas = without_b.clone();
        no_replicas["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("replicas");
        let kept = apply(
            Some(&shared),
            &no_replicas,
            "kube-mlops",
            false,
            "apps/v1",
            t,
        )
        .expect("apply");
        assert_eq!(kept["spec"]["replicas"], 1);
        let alone = apply(
            Some(&live2),
            &no_replicas,
            "kube-mlops",
            false,
            "apps/v1",
            t,
        )
        .expect("apply");
        assert!(alone["spec"].get("replicas").is_none(), "{alone}");
    }

    #[test]
    fn a_strategic_merge_patch_merges_containers_by_name() {
        let d = defs();
        let t = types(&d);
        let live = deployment(
            1,
            json!([{"name": "api", "image": "a:1"}, {"name": "side", "image": "s:1"}]),
        );
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "api"}, {"name": "side"}],
            "containers": [{"name": "api", "image": "a:2"}, {"name": "side", "$patch": "delete"}]}}}});
        let out = strategic_merge(&live, &patch, t);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "api", "image": "a:2"}])
        );
        let labels = strategic_merge(
            &json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
            t,
        );
        assert_eq!(labels["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    }

    #[test]
    fn paths_print_as_the_api_server_prints_them() {
        let p = vec![
            Pe::Field("spec".into()),
            Pe::Field("containers".into()),
            Pe::Key("{\"name\":\"api\"}".into()),
            Pe::Field("image".into()),
        ];
        assert_eq!(display(&p), ".spec.containers[name=\"api\"].image");
        let set = BTreeSet::from([p.clone()]);
        assert_eq!(decode(&encode(&set)), set);
    }
}
