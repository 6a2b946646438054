//! The xtask's architecture, checked (ARCHITECTURE.md says it in words):
//! its modules import only from their own layer or the ones below, there is
//! no import cycle among them, clap stays in the command layer, and only
//! the targets module (and the settings that define it) names a target.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Top-level folders of xtask/src, bottom to top.
const LAYERS: [&str; 12] = [
    "ground",
    "build",
    "image",
    "publish",
    "verify",
    "manifests",
    "targets",
    "seldon",
    "release",
    "devloop",
    "commands",
    "main",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file with its module path (`ground::runner::display`).
fn modules() -> Result<BTreeMap<String, String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(&src(), &mut files)?;
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src())?.with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        out.insert(parts.join("::"), std::fs::read_to_string(&f)?);
    }
    Ok(out)
}

/// The code without comments and its unit tests (roughly: enough to find
/// paths in it). Unit tests come last (clippy's items_after_test_module),
/// and their `super::` is the file's own module.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Module paths `text` refers to through `crate::` and `super::`, from the
/// module `me` (a `mod.rs` module when `is_dir`).
fn references(me: &str, is_dir: bool, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let code = code(text);
    let parent: Vec<&str> = {
        let mut p: Vec<&str> = me.split("::").filter(|s| !s.is_empty()).collect();
        if !is_dir {
            p.pop();
        }
        p
    };
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code.as_str();
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            // `a::b::{c, d::e}` or `a::b::c`
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            let (head, group) = match path.split_once('{') {
                Some((h, _)) => {
                    let close = rest.find('}').unwrap_or(rest.len());
                    let inner = &rest[rest.find('{').unwrap_or(0) + 1..close];
                    (
                        h.trim_end_matches("::").to_string(),
                        Some(inner.to_string()),
                    )
                }
                None => (path.trim_end_matches("::").to_string(), None),
            };
            let mut candidates = Vec::new();
            match group {
                Some(inner) => {
                    for item in inner.split(',') {
                        let item = item.trim().split(" as ").next().unwrap_or("").trim();
                        candidates.push(format!("{head}::{item}"));
                    }
                }
                None => candidates.push(head),
            }
            for c in candidates {
                let mut full: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                full.extend(c.split("::").filter(|s| !s.is_empty()).map(String::from));
                // The longest prefix that is a module.
                while !full.is_empty() && !known.contains(&full.join("::")) {
                    full.pop();
                }
                if !full.is_empty() {
                    out.insert(full.join("::"));
                }
            }
        }
    }
    // Paths through a child module (`use display::shown` in runner.rs,
    // `commands::Cli` in main.rs).
    let children = known.iter().filter_map(|k| {
        let rest = if me == "main" {
            Some(k.as_str())
        } else {
            k.strip_prefix(me)?.strip_prefix("::")
        }?;
        (!rest.contains("::")).then_some((k, rest))
    });
    for (child, name) in children {
        let needle = format!("{name}::");
        let mut rest = code.as_str();
        while let Some(i) = rest.find(&needle) {
            let before = rest[..i].chars().last();
            rest = &rest[i + needle.len()..];
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                out.insert(child.clone());
                break;
            }
        }
    }
    out
}

fn layer(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or(LAYERS.len())
}

#[test]
fn layers_import_only_downwards_and_modules_form_no_cycle() -> Result {
    let modules = modules()?;
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let dirs: BTreeSet<String> = modules
        .keys()
        .filter(|m| src().join(m.replace("::", "/")).is_dir())
        .cloned()
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (me, text) in &modules {
        let refs: BTreeSet<String> = references(me, dirs.contains(me), text, &known)
            .into_iter()
            .filter(|r| r != me)
            .collect();
        for r in &refs {
            if layer(r) > layer(me) {
                upward.push(format!("{me} -> {r}"));
            }
        }
        graph.insert(me.clone(), refs);
    }
    assert!(upward.is_empty(), "imports from a layer above: {upward:#?}");
    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let start = stack.iter().position(|s| s == node).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        let cycle = visit(node, &graph, &mut state, &mut Vec::new());
        assert!(
            cycle.is_none(),
            "import cycle: {}",
            cycle.unwrap_or_default().join(" -> ")
        );
    }
    // The check sees real edges (a broken parser would pass vacuously).
    assert!(graph["commands::deploy"].contains("targets"));
    assert!(graph["targets::kube"].contains("targets::clusters::cluster"));
    assert!(graph["ground::runner::display"].contains("ground::runner::pump"));
    assert!(graph["main"].contains("commands"), "{:?}", graph["main"]);
    assert!(graph["commands"].contains("commands::args"));
    Ok(())
}

#[test]
fn clap_stays_in_the_command_layer() -> Result {
    for (module, text) in modules()? {
        if layer(&module) >= layer("commands") {
            continue;
        }
        assert!(!code(&text).contains("clap"), "{module} uses clap");
    }
    Ok(())
}

#[test]
fn only_the_targets_module_tells_targets_apart() -> Result {
    for (module, text) in modules()? {
        if module.starts_with("targets") || module == "ground::settings" {
            continue;
        }
        // Targets are named in the registries (`targets::all`,
        // `clusters::KINDS`); elsewhere a name is data, never matched on.
        assert!(
            !code(&text).contains("TargetName::named"),
            "{module} names a target itself"
        );
    }
    Ok(())
}

#[test]
fn dry_run_is_decided_in_one_place() -> Result {
    // The flag is parsed in commands and handed to the runner by the
    // context; everything else asks the runner (`effect`, `unless_dry_run`).
    for (module, text) in modules()? {
        if ["ground::runner", "ground::context", "commands"].contains(&module.as_str()) {
            continue;
        }
        let asks_itself = code(&text)
            .replace("unless_dry_run", "")
            .contains("dry_run");
        assert!(
            !asks_itself,
            "{module} decides about --dry-run itself; use the runner's effect/unless_dry_run"
        );
    }
    Ok(())
}

#[test]
fn the_settings_are_read_in_the_command_layer_only() -> Result {
    // Construct, don't consult: the commands read the settings and hand
    // the layers below values holding their own. Below them, the settings
    // file's type (`Config`) and its loader (`Loaded`) appear only where
    // they are defined, and in the two registries that make targets and
    // cluster kinds of them (`targets::for_name`, `clusters::KINDS` with
    // the type of a kind's constructor, `ClusterKind`).
    let registries = [
        "ground::settings",
        "targets",
        "targets::clusters",
        "targets::clusters::cluster",
    ];
    for (module, text) in modules()? {
        if layer(&module) >= layer("commands") || registries.contains(&module.as_str()) {
            continue;
        }
        // Code outside string literals (Docker's and minikube's JSON keys
        // name a `Config` of their own).
        let outside = without_strings(
            text.split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or(&text),
        );
        let words: BTreeSet<&str> = outside
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        for settings in ["Config", "Loaded"] {
            assert!(
                !words.contains(settings),
                "{module} uses the settings' {settings}: take the values it needs instead"
            );
        }
    }
    Ok(())
}

/// `text` without its comments and the contents of its string literals
/// (plain, raw, byte), char literals such as `'"'` skipped.
fn without_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n', '\''), not a lifetime ('a).
            let end = if chars.get(i + 1) == Some(&'\\') {
                (i + 3..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else {
                Some(i + 2).filter(|&j| chars.get(j) == Some(&'\''))
            };
            if let Some(end) = end {
                i = end + 1;
                continue;
            }
        }
        if c == 'r' && matches!(chars.get(i + 1), Some('#' | '"')) {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) == Some(&'"') {
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let rest: String = chars[i + 2 + hashes..].iter().collect();
                let len = rest.find(&close).map_or(rest.len(), |n| n + close.len());
                i += 2 + hashes + rest[..len].chars().count();
                out.push(' ');
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push(' ');
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}
