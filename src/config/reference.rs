//! The config reference is checked against the keys the config types declare: every key has
//! one row in the README's table, naming its default, and stands in the example file, so the
//! documentation cannot drift from the code.

use std::collections::BTreeSet;
use std::path::Path;

use super::RawConfig;
use super::schema::{Kind, root};

/// Every key the config types declare, as `section.key` (sub-tables `section.sub.key`), with
/// its default as TOML renders it where it has one.
fn declared() -> Vec<(String, Option<toml::Value>)> {
    fn walk(
        prefix: &str,
        keys: &std::collections::BTreeMap<&'static str, Kind>,
        defaults: Option<&toml::Table>,
        out: &mut Vec<(String, Option<toml::Value>)>,
    ) {
        for (key, kind) in keys {
            let name = if prefix.is_empty() {
                (*key).to_owned()
            } else {
                format!("{prefix}.{key}")
            };
            let default = defaults.and_then(|t| t.get(*key));
            match kind {
                Kind::Section(inner) => {
                    walk(&name, inner, default.and_then(toml::Value::as_table), out)
                }
                _ => out.push((name, default.cloned())),
            }
        }
    }
    let defaults = toml::Value::try_from(RawConfig::default()).expect("the defaults render");
    let mut out = Vec::new();
    walk("", &root(), defaults.as_table(), &mut out);
    out
}

/// The README's reference rows: key and default cell.
fn readme_rows(readme: &str) -> Vec<(String, String)> {
    readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.split(" | ");
            let key = cells.next()?.strip_suffix('`')?;
            let default = cells.next()?;
            key.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                .then(|| (key.to_owned(), default.to_owned()))
        })
        .collect()
}

/// How a default reads in the table: text without quotes, other values as TOML writes them.
fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_readme_table_has_one_row_per_key_with_its_default() {
    let declared = declared();
    let rows = readme_rows(&read("README.md"));
    let names: BTreeSet<&str> = declared.iter().map(|(k, _)| k.as_str()).collect();
    for (key, _) in &rows {
        assert!(
            names.contains(key.as_str()),
            "README documents {key}, which no config type declares"
        );
    }
    for (key, default) in &declared {
        let cells: Vec<&String> = rows
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, d)| d)
            .collect();
        assert_eq!(
            cells.len(),
            1,
            "README's config table needs exactly one row for {key}"
        );
        if let Some(value) = default {
            let text = shown(value);
            assert!(
                cells[0].contains(&format!("`{text}`"))
                    || cells[0].contains(&format!("`\"{text}\"`")),
                "README gives {key} the default {:?}; the code's is {text:?}",
                cells[0]
            );
        }
    }
}

#[test]
fn the_example_file_names_every_key() {
    let example = read("config/tokengate.example.toml");
    let mut section = String::new();
    let mut named = BTreeSet::new();
    for line in example.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !table.contains(' ') {
                section = table.to_owned();
            }
            continue;
        }
        if let Some((key, _)) = line.split_once(" = ")
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        {
            named.insert(if section.is_empty() {
                key.to_owned()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    for (key, _) in declared() {
        // A map section's own entries are the user's (per-logger levels).
        if key == "log.loggers" {
            continue;
        }
        assert!(
            named.contains(&key),
            "config/tokengate.example.toml does not show {key}"
        );
    }
}
