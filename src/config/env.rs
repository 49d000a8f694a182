//! `TOKENGATE_SECTION__KEY` environment overrides, applied to the parsed TOML document before
//! it is read into [`super::RawConfig`], so they are checked exactly like the file. A value is
//! read as its key expects it: as written for a text key, as TOML for anything else.

use toml::{Table, Value};

use super::ConfigError;
use super::schema::{self, Kind};

const PREFIX: &str = "TOKENGATE_";

/// Keys whose values are secret: an error about them never shows the value.
const SECRET_KEYS: [&str; 6] = [
    "admin.token",
    "upstream.credential_key",
    "database.url",
    "self_service.bitbucket_credential",
    "rate_limit.redis_url",
    "notify.webhook_url",
];

/// What the environment changed, to name the variable in errors and warnings.
#[derive(Debug, Default)]
pub(super) struct Overrides {
    /// Each key set (`auth.cache_ttl`, `node_id`) and the variable that set it.
    set: Vec<(String, String)>,
    /// `TOKENGATE_…` variables whose first segment names no key or section, such as the
    /// `TOKENGATE_SERVICE_HOST` and `TOKENGATE_PORT` that Kubernetes adds for a Service named
    /// `tokengate`: ignored.
    pub(super) ignored: Vec<String>,
}

impl Overrides {
    /// The key and variable that set `path`: a key such as `auth.cache_ttl`, or a place inside
    /// one such as `auth.allowed_ips[0]` or `log.loggers.sqlx`.
    pub(super) fn setter_of(&self, path: &str) -> Option<(&str, &str)> {
        self.set.iter().rev().find_map(|(key, var)| {
            let inside = path
                .strip_prefix(key.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']));
            inside.then_some((key.as_str(), var.as_str()))
        })
    }

    /// `e` naming the variable, when a value from the environment caused it.
    pub(super) fn blame(&self, e: ConfigError) -> ConfigError {
        match e {
            ConfigError::Value { key, value, reason } => match self.setter_of(key) {
                Some((_, var)) => ConfigError::Env {
                    var: var.to_owned(),
                    reason: format!("invalid value {value:?} for key {key}: {reason}"),
                },
                None => ConfigError::Value { key, value, reason },
            },
            ConfigError::Log(message) => {
                let setter = self
                    .set
                    .iter()
                    .rev()
                    .find(|(key, _)| key.starts_with("log.") && message.contains(key.as_str()));
                match setter {
                    Some((_, var)) => ConfigError::Env {
                        var: var.clone(),
                        reason: message,
                    },
                    None => ConfigError::Log(message),
                }
            }
            other => other,
        }
    }

    /// A deserialization error at `path`, naming the variable when it set that key; `None`
    /// when the value came from the file.
    pub(super) fn type_error(&self, path: &str, message: &str) -> Option<ConfigError> {
        let (key, var) = self.setter_of(path)?;
        let reason = if SECRET_KEYS.contains(&key) {
            format!("key {key}: invalid value (not shown: it is a secret)")
        } else {
            format!("key {path}: {message}")
        };
        Some(ConfigError::Env {
            var: var.to_owned(),
            reason,
        })
    }
}

/// Applies every `TOKENGATE_…` variable of `vars` to `doc`. `TOKENGATE_NODE_ID` sets a
/// top-level key; `TOKENGATE_AUTH__CACHE_TTL` sets `cache_ttl` in `[auth]`, and
/// `TOKENGATE_PROXY__TLS__CERT` sets `cert` in `[proxy.tls]`. A variable whose first segment
/// is not a key or section is ignored (and listed in the result); one that names a section
/// but no key of it is an error.
pub(super) fn apply(
    doc: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Overrides, ConfigError> {
    let root = schema::root();
    let mut overrides = Overrides::default();
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // Names the config file itself (read before this).
        if name == super::CONFIG_VAR {
            continue;
        }
        let path = path.to_ascii_lowercase();
        let segments: Vec<&str> = path.split("__").collect();
        if !root.contains_key(segments[0]) {
            overrides.ignored.push(name);
            continue;
        }
        let refuse = |reason: String| ConfigError::Env {
            var: name.clone(),
            reason,
        };
        // Upper-case variable names of the first n segments, for messages.
        let var_of =
            |n: usize| format!("{PREFIX}{}", segments[..n].join("__").to_ascii_uppercase());
        let mut table = &mut *doc;
        let mut keys = &root;
        for (i, segment) in segments.iter().copied().enumerate() {
            let dotted = segments[..=i].join(".");
            let Some(kind) = keys.get(segment) else {
                let known: Vec<&str> = keys.keys().copied().collect();
                return Err(refuse(format!(
                    "[{}] has no key {segment}; its keys are {}",
                    segments[..i].join("."),
                    known.join(", ")
                )));
            };
            let last = i + 1 == segments.len();
            match (kind, last) {
                (Kind::Section(inner), false) => {
                    let entry = table
                        .entry(segment)
                        .or_insert_with(|| Value::Table(Table::new()));
                    let Value::Table(inner_table) = entry else {
                        return Err(refuse(format!(
                            "{dotted} in the config file is not a section"
                        )));
                    };
                    table = inner_table;
                    keys = inner;
                }
                (Kind::Section(_), true) => {
                    return Err(refuse(format!(
                        "names the section [{dotted}], not a key: expected {}__KEY",
                        var_of(i + 1)
                    )));
                }
                (kind, true) => {
                    let value = parse_value(&raw, kind).ok_or_else(|| {
                        refuse(format!("expected {}, not {raw:?}", kind.expected()))
                    })?;
                    table.insert(segment.to_owned(), value);
                    overrides.set.push((dotted, name.clone()));
                }
                (_, false) => {
                    return Err(refuse(format!(
                        "{dotted} is a key, not a section: expected {}",
                        var_of(i + 1)
                    )));
                }
            }
        }
    }
    Ok(overrides)
}

/// The variable that `var`, ignored for naming no key or section, probably meant: the same
/// words with two underscores between a section and its key (`TOKENGATE_AUTH_CACHE_TTL` →
/// `TOKENGATE_AUTH__CACHE_TTL`). `None` when no reading of its underscores names a key.
pub(super) fn meant(var: &str) -> Option<String> {
    let path = var.strip_prefix(PREFIX)?.to_ascii_lowercase();
    let segments = resolve(&schema::root(), &path)?;
    (segments.len() > 1).then(|| format!("{PREFIX}{}", segments.join("__").to_ascii_uppercase()))
}

/// `path` read as `section_…_key` through `keys`: the segments, each a section or (last) a key.
fn resolve(
    keys: &std::collections::BTreeMap<&'static str, Kind>,
    path: &str,
) -> Option<Vec<String>> {
    let whole = keys
        .get(path)
        .filter(|kind| !matches!(kind, Kind::Section(_)))
        .map(|_| vec![path.to_owned()]);
    whole.or_else(|| {
        path.match_indices('_').find_map(|(at, _)| {
            let (head, tail) = (&path[..at], &path[at + 1..]);
            let Some(Kind::Section(inner)) = keys.get(head) else {
                return None;
            };
            let mut rest = resolve(inner, tail.trim_start_matches('_'))?;
            rest.insert(0, head.to_owned());
            Some(rest)
        })
    })
}

/// `raw` as a value of `kind`: text as written, anything else read as TOML. `None` when it is
/// not of that kind (never for text, so a secret is never refused here).
fn parse_value(raw: &str, kind: &Kind) -> Option<Value> {
    if *kind == Kind::Text {
        return Some(Value::String(raw.to_owned()));
    }
    let mut table: Table = format!("v = {raw}").parse().ok()?;
    let value = table.remove("v")?;
    if !table.is_empty() {
        return None;
    }
    match (kind, value) {
        (Kind::Bool, v @ Value::Boolean(_))
        | (Kind::Integer | Kind::Float, v @ Value::Integer(_))
        | (Kind::Float, v @ Value::Float(_))
        | (Kind::List, v @ Value::Array(_))
        | (Kind::Map | Kind::Section(_), v @ Value::Table(_)) => Some(v),
        _ => None,
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
                ("TOKENGATE_PROXY__MAX_HEADER_BYTES", "16384"),
                ("TOKENGATE_LOG__LOGGERS", "{ sqlx = \"debug\" }"),
                ("TOKENGATE_NODE_ID", "A6X2OX"),
                ("PATH", "/usr/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(doc["database"]["url"].as_str(), Some("postgres://u@h/db"));
        assert_eq!(doc["auth"]["basic_auth_fallback"].as_bool(), Some(false));
        assert_eq!(doc["auth"]["allowed_ips"][0].as_str(), Some("10.0.0.0/8"));
        assert_eq!(doc["proxy"]["max_header_bytes"].as_integer(), Some(16384));
        assert_eq!(doc["log"]["loggers"]["sqlx"].as_str(), Some("debug"));
        assert_eq!(doc["node_id"].as_str(), Some("A6X2OX"));
        assert!(!doc.contains_key("path"));
    }

    #[test]
    fn sets_keys_of_sub_tables() {
        let mut doc: Table = "[proxy]\nlisten = \"0.0.0.0:8443\"\n[admin.tls]\ncert = \"a.pem\"\n"
            .parse()
            .unwrap();
        let overrides = apply(
            &mut doc,
            vars(&[
                ("TOKENGATE_PROXY__TLS__CERT", "/etc/tls/tls.crt"),
                ("TOKENGATE_PROXY__TLS__KEY", "/etc/tls/tls.key"),
                ("TOKENGATE_ADMIN__TLS__KEY", "b.pem"),
            ]),
        )
        .unwrap();
        assert_eq!(doc["proxy"]["listen"].as_str(), Some("0.0.0.0:8443"));
        assert_eq!(
            doc["proxy"]["tls"]["cert"].as_str(),
            Some("/etc/tls/tls.crt")
        );
        assert_eq!(
            doc["proxy"]["tls"]["key"].as_str(),
            Some("/etc/tls/tls.key")
        );
        assert_eq!(doc["admin"]["tls"]["cert"].as_str(), Some("a.pem"));
        assert_eq!(doc["admin"]["tls"]["key"].as_str(), Some("b.pem"));
        assert_eq!(
            overrides.setter_of("proxy.tls.key"),
            Some(("proxy.tls.key", "TOKENGATE_PROXY__TLS__KEY"))
        );
    }

    #[test]
    fn text_keys_keep_values_that_look_like_numbers_or_toml() {
        let mut doc = Table::new();
        apply(
            &mut doc,
            vars(&[
                ("TOKENGATE_NODE_ID", "123456"),
                ("TOKENGATE_ADMIN__TOKEN", "1234567890123456789"),
                ("TOKENGATE_UPSTREAM__CREDENTIAL_KEY", "true"),
                ("TOKENGATE_LOG__LEVEL", "\"info\""),
            ]),
        )
        .unwrap();
        assert_eq!(doc["node_id"].as_str(), Some("123456"));
        assert_eq!(doc["admin"]["token"].as_str(), Some("1234567890123456789"));
        assert_eq!(doc["upstream"]["credential_key"].as_str(), Some("true"));
        assert_eq!(doc["log"]["level"].as_str(), Some("\"info\""));
    }

    #[test]
    fn ignores_variables_that_name_no_key_or_section() {
        let mut doc = Table::new();
        let overrides = apply(
            &mut doc,
            vars(&[
                ("TOKENGATE_SERVICE_HOST", "10.96.0.12"),
                ("TOKENGATE_PORT", "tcp://10.96.0.12:8080"),
                ("TOKENGATE_PORT_8080_TCP_ADDR", "10.96.0.12"),
                ("TOKENGATE_A__B__C", "x"),
                ("TOKENGATE_NODE_ID", "A6X2OX"),
            ]),
        )
        .unwrap();
        assert_eq!(
            overrides.ignored,
            [
                "TOKENGATE_SERVICE_HOST",
                "TOKENGATE_PORT",
                "TOKENGATE_PORT_8080_TCP_ADDR",
                "TOKENGATE_A__B__C"
            ]
        );
        assert_eq!(doc.keys().collect::<Vec<_>>(), ["node_id"]);
    }

    #[test]
    fn a_single_underscore_between_section_and_key_is_read_as_what_it_meant() {
        for (var, expected) in [
            (
                "TOKENGATE_AUTH_CACHE_TTL",
                Some("TOKENGATE_AUTH__CACHE_TTL"),
            ),
            ("TOKENGATE_DATABASE_URL", Some("TOKENGATE_DATABASE__URL")),
            ("TOKENGATE_PROXY_LISTEN", Some("TOKENGATE_PROXY__LISTEN")),
            (
                "TOKENGATE_AUTH_BASIC_AUTH_FALLBACK",
                Some("TOKENGATE_AUTH__BASIC_AUTH_FALLBACK"),
            ),
            (
                "TOKENGATE_RATE_LIMIT_DEFAULT",
                Some("TOKENGATE_RATE_LIMIT__DEFAULT"),
            ),
            ("TOKENGATE_SERVICE_HOST", None),
            ("TOKENGATE_PORT_8080_TCP_ADDR", None),
            ("TOKENGATE_AUTH_NO_SUCH_KEY", None),
        ] {
            assert_eq!(meant(var).as_deref(), expected, "{var}");
        }
        // Still ignored, never applied: its value goes nowhere.
        let mut doc = Table::new();
        let overrides = apply(&mut doc, vars(&[("TOKENGATE_AUTH_CACHE_TTL", "5s")])).unwrap();
        assert_eq!(overrides.ignored, ["TOKENGATE_AUTH_CACHE_TTL"]);
        assert!(doc.is_empty());
        // The variable naming the config file is no key, and no warning either.
        let overrides = apply(&mut doc, vars(&[("TOKENGATE_CONFIG", "/etc/x.toml")])).unwrap();
        assert!(overrides.ignored.is_empty() && doc.is_empty());
    }

    #[test]
    fn refuses_unknown_keys_of_known_sections_naming_the_variable() {
        for (var, value, says) in [
            (
                "TOKENGATE_PROXY__LISTN",
                "0.0.0.0:1",
                "[proxy] has no key listn",
            ),
            ("TOKENGATE_PROXY", "x", "names the section [proxy]"),
            (
                "TOKENGATE_PROXY__LISTEN__X",
                "x",
                "proxy.listen is a key, not a section: expected TOKENGATE_PROXY__LISTEN",
            ),
            (
                "TOKENGATE_PROXY__TLS",
                "x",
                "names the section [proxy.tls], not a key: expected TOKENGATE_PROXY__TLS__KEY",
            ),
            (
                "TOKENGATE_PROXY__TLS__CRT",
                "x",
                "[proxy.tls] has no key crt; its keys are cert, key",
            ),
            (
                "TOKENGATE_NODE_ID__X",
                "x",
                "node_id is a key, not a section",
            ),
            (
                "TOKENGATE_AUTH__BASIC_AUTH_FALLBACK",
                "yes",
                "expected true or false",
            ),
            (
                "TOKENGATE_PROXY__MAX_HEADER_BYTES",
                "64k",
                "expected a whole number",
            ),
            (
                "TOKENGATE_PROXY__MAX_HEADER_BYTES",
                "1\nx = 2",
                "expected a whole number",
            ),
        ] {
            let e = apply(&mut Table::new(), vars(&[(var, value)])).unwrap_err();
            let m = e.to_string();
            assert!(m.contains(var) && m.contains(says), "{var}: {m}");
        }
    }
}
