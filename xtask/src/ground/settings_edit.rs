//! Adding a `[services.<name>]` table to xtask.toml the way a person would:
//! after the last service's table, with a comment, and every other byte of
//! the file (comments, layout, key order) kept (toml_edit).

use anyhow::{Context, Result, bail};
use toml_edit::{DocumentMut, Item, Table, Value};

/// A value of the new table.
pub enum Entry {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<String>),
    /// An inline table: `{ key = value, ... }`.
    Inline(Vec<(&'static str, Entry)>),
}

impl Entry {
    fn value(&self) -> Value {
        match self {
            Self::Str(s) => s.as_str().into(),
            Self::Int(i) => (*i).into(),
            Self::Bool(b) => (*b).into(),
            Self::List(l) => l
                .iter()
                .map(String::as_str)
                .collect::<toml_edit::Array>()
                .into(),
            Self::Inline(entries) => {
                let mut t = toml_edit::InlineTable::new();
                for (k, v) in entries {
                    t.insert(*k, v.value());
                }
                t.into()
            }
        }
    }
}

/// `text` with `[services.<name>]` holding `entries` (in order) after the
/// last services table, `comment` (one line, without `#`) above its keys.
///
/// # Errors
/// Text that is not TOML, a `services` that is not a table, a service of
/// that name already there.
pub fn add_service(
    text: &str,
    name: &str,
    comment: &str,
    entries: &[(&str, Entry)],
) -> Result<String> {
    let mut doc: DocumentMut = text
        .parse()
        .context("the settings file is not valid TOML")?;
    let last = doc
        .get("services")
        .and_then(Item::as_table)
        .map(|t| {
            t.iter()
                .filter_map(|(_, v)| v.as_table().and_then(Table::position))
                .max()
        })
        .unwrap_or(None);
    let services = doc
        .entry("services")
        .or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        })
        .as_table_mut()
        .context("`services` in the settings file is not a table")?;
    if services.contains_key(name) {
        bail!("the settings already have [services.{name}]");
    }
    let mut table = Table::new();
    for (key, entry) in entries {
        table.insert(key, Item::Value(entry.value()));
    }
    table.decor_mut().set_prefix("\n");
    // The comment goes above the first key.
    if let Some(mut key) = table.key_mut(entries.first().map_or("", |(k, _)| k)) {
        key.leaf_decor_mut().set_prefix(format!("# {comment}\n"));
    }
    if let Some(after) = last {
        // Room after the last service: every later table moves down one.
        shift_after(doc.as_table_mut(), after);
        table.set_position(Some(after + 1));
    }
    let services = doc
        .get_mut("services")
        .and_then(Item::as_table_mut)
        .context("`services` in the settings file is not a table")?;
    services.insert(name, Item::Table(table));
    Ok(doc.to_string())
}

/// Adds one to the position of every table placed after `after`.
fn shift_after(table: &mut Table, after: isize) {
    for (_, item) in table.iter_mut() {
        if let Some(t) = item.as_table_mut() {
            if let Some(p) = t.position()
                && p > after
            {
                t.set_position(Some(p + 1));
            }
            shift_after(t, after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# my settings\ndefault_target = \"local\"\n\n[services.a]\n# the first\nport = 1\n\n[services.b]\nport = 2 # inline\n\n[local]\n# keep me\nrun_dir = \"r\"\n";

    #[test]
    fn the_table_goes_after_the_last_service_and_nothing_else_moves() -> Result<()> {
        let out = add_service(
            TEXT,
            "wine",
            "a wine classifier",
            &[
                ("model", Entry::Str("onnx".into())),
                ("port", Entry::Int(5003)),
                (
                    "class_names",
                    Entry::List(vec!["x".into(), "y \"z\"".into()]),
                ),
                ("seldon", Entry::Bool(true)),
                (
                    "smoke",
                    Entry::Inline(vec![("path", Entry::Str("/h".into()))]),
                ),
            ],
        )?;
        let want = "# my settings\ndefault_target = \"local\"\n\n[services.a]\n# the first\nport = 1\n\n[services.b]\nport = 2 # inline\n\n[services.wine]\n# a wine classifier\nmodel = \"onnx\"\nport = 5003\nclass_names = [\"x\", 'y \"z\"']\nseldon = true\nsmoke = { path = \"/h\" }\n\n[local]\n# keep me\nrun_dir = \"r\"\n";
        assert_eq!(out, want);
        let parsed: toml::Table = toml::from_str(&out)?;
        assert_eq!(
            parsed["services"]["wine"]["class_names"][1].as_str(),
            Some("y \"z\"")
        );
        Ok(())
    }

    #[test]
    fn a_file_without_services_gets_the_table_at_the_end() -> Result<()> {
        let out = add_service(
            "[local]\nrun_dir = \"r\"\n",
            "w",
            "c",
            &[("port", Entry::Int(1))],
        )?;
        assert!(out.ends_with("[services.w]\n# c\nport = 1\n"), "{out}");
        Ok(())
    }

    #[test]
    fn a_name_taken_is_refused() {
        let e = add_service(TEXT, "a", "c", &[("port", Entry::Int(9))]).expect_err("taken");
        assert!(e.to_string().contains("already have [services.a]"), "{e}");
    }
}
