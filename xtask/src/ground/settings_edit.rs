//! Adding a `[services.<name>]` table to xtask.toml the way a person would:
//! after the last service's table, with a comment, and every other byte of
//! the file (comments, layout, key order) kept (toml_edit).

use anyhow::{Context, Result, bail};
use toml_edit::{DocumentMut, Item, Table, Value};

use super::service_settings::ServiceKind;

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

/// `text` with the built-in services written out when it declares none:
/// adding a service to a file without `[services.*]` tables must not drop
/// the three the file stood for.
///
/// # Errors
/// Text that is not TOML.
pub fn spell_out_defaults(text: &str) -> Result<String> {
    let doc: DocumentMut = text
        .parse()
        .context("the settings file is not valid TOML")?;
    if doc.contains_key("services") {
        return Ok(text.to_string());
    }
    let mut out = text.to_string();
    for s in super::service_settings::Services::default().0 {
        let mut entries: Vec<(&str, Entry)> = Vec::new();
        match &s.kind {
            ServiceKind::Model(m) => entries.push(("model", Entry::Str(m.model.as_str().into()))),
            ServiceKind::Crate { package, .. } => {
                entries.push(("package", Entry::Str(package.clone())));
            }
        }
        entries.push(("port", Entry::Int(i64::from(s.port))));
        entries.push(("image", Entry::Str(s.image.clone())));
        if let ServiceKind::Crate { smoke: Some(_), .. } = &s.kind {
            entries.push(("smoke", Entry::Str("tutorial-greeting".into())));
        }
        if s.seldon_name != format!("seldon-{}", s.name) && s.seldon {
            entries.push(("seldon_name", Entry::Str(s.seldon_name.clone())));
        }
        out = add_service(
            &out,
            &s.name,
            "A built-in default, written out when the first service was added.",
            &entries,
        )?;
    }
    Ok(out)
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
    fn the_defaults_are_written_out_before_a_first_service() -> Result<()> {
        let out = spell_out_defaults("# mine\n[local]\nrun_dir = \"r\"\n")?;
        let parsed = crate::ground::settings::parse(&out)?;
        let mut want = crate::ground::settings::Config::default();
        want.local.run_dir = "r".into();
        let mut got = parsed;
        for s in &mut got.services.0 {
            s.line = 0;
        }
        assert_eq!(got, want, "{out}");
        assert!(out.starts_with("# mine\n"), "{out}");
        assert_eq!(
            spell_out_defaults(TEXT)?,
            TEXT,
            "a file with services is kept"
        );
        Ok(())
    }

    #[test]
    fn a_name_taken_is_refused() {
        let e = add_service(TEXT, "a", "c", &[("port", Entry::Int(9))]).expect_err("taken");
        assert!(e.to_string().contains("already have [services.a]"), "{e}");
    }
}
