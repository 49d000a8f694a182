//! `TOKENGATE_SECTION__KEY` environment overrides, applied to the parsed TOML document before
//! it is read into [`super::RawConfig`], so they are checked exactly like the file.

use toml::{Table, Value};

use super::ConfigError;

const PREFIX: &str = "TOKENGATE_";

/// Applies every `TOKENGATE_…` variable of `vars` to `doc`. `TOKENGATE_NODE_ID` sets a
/// top-level key; `TOKENGATE_AUTH__CACHE_TTL` sets `cache_ttl` in `[auth]`. Values are read
/// as TOML (`true`, `5`, `["a", "b"]`) and otherwise taken as a string.
pub(super) fn apply(
    doc: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let path = path.to_ascii_lowercase();
        let parts: Vec<&str> = path.split("__").collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 2 {
            return Err(ConfigError::Env {
                var: name,
                reason: "expected TOKENGATE_KEY or TOKENGATE_SECTION__KEY".into(),
            });
        }
        let value = parse_value(&raw);
        let (table, key) = match parts.as_slice() {
            [key] => (&mut *doc, *key),
            [section, key] => {
                let entry = doc
                    .entry((*section).to_owned())
                    .or_insert_with(|| Value::Table(Table::new()));
                let Value::Table(table) = entry else {
                    return Err(ConfigError::Env {
                        var: name,
                        reason: format!("`{section}` is not a section"),
                    });
                };
                (table, *key)
            }
            _ => unreachable!("checked above"),
        };
        table.insert(key.to_owned(), value);
    }
    Ok(())
}

fn parse_value(raw: &str) -> Value {
    let attempt = format!("v = {raw}");
    match attempt.parse::<Table>() {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| Value::String(raw.into())),
        _ => Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn sets_sections_and_top_level_keys_with_typed_values() {
        let mut doc = Table::new();
        apply(
            &mut doc,
            vars(&[
                ("TOKENGATE_DATABASE__URL", "postgres://u@h/db"),
                ("TOKENGATE_AUTH__BASIC_AUTH_FALLBACK", "false"),
                ("TOKENGATE_AUTH__ALLOWED_IPS", "[\"10.0.0.0/8\"]"),
                ("TOKENGATE_NODE_ID", "A6X2OX"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(doc["database"]["url"].as_str(), Some("postgres://u@h/db"));
        assert_eq!(doc["auth"]["basic_auth_fallback"].as_bool(), Some(false));
        assert_eq!(doc["auth"]["allowed_ips"][0].as_str(), Some("10.0.0.0/8"));
        assert_eq!(doc["node_id"].as_str(), Some("A6X2OX"));
        assert!(!doc.contains_key("path"));
    }

    #[test]
    fn refuses_malformed_names() {
        let mut doc = Table::new();
        assert!(apply(&mut doc, vars(&[("TOKENGATE_A__B__C", "x")])).is_err());
        assert!(apply(&mut doc, vars(&[("TOKENGATE___X", "x")])).is_err());
    }
}
