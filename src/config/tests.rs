use std::io::Write;

use super::*;
use crate::audit::Coverage;

mod rate_limit;
mod self_service;

fn load(toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(toml.as_bytes()).unwrap();
    let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
    Config::load_with_env(Some(file.path()), vars.collect::<Vec<_>>())
}

fn message(toml: &str) -> String {
    load(toml, &[]).unwrap_err().to_string()
}

#[test]
fn defaults_make_a_runnable_config() {
    let config = load("", &[]).unwrap();
    assert_eq!(config.proxy.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:8081");
    assert_eq!(config.upstream.url.to_string(), "http://127.0.0.1:7990/");
    assert_eq!(config.auth.protected_paths, ["/rest/", "/scm/"]);
    assert!(config.auth.basic_auth_fallback);
    assert_eq!(config.auth.cache_ttl, Duration::from_secs(60));
    assert_eq!(config.rate_limit.default.to_string(), "1000/1h");
    assert_eq!(config.auth.failed_attempts_per_ip.to_string(), "20/1m");
    assert!(config.admin.token.is_none());
    assert_eq!(config.audit.coverage, Coverage::Full);
    let id = &config.node_id;
    assert!(
        (6..=7).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()),
        "{id}"
    );
}

#[test]
fn the_shipped_config_files_are_valid() {
    for path in ["config/tokengate.toml", "config/tokengate.example.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        Config::load_with_env(Some(&path), Vec::new())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn environment_overrides_the_file() {
    let config = load(
        "[auth]\ncache_ttl = \"10s\"\n",
        &[
            ("TOKENGATE_AUTH__CACHE_TTL", "5s"),
            ("TOKENGATE_NODE_ID", "A6X2OX"),
            ("TOKENGATE_AUTH__BASIC_AUTH_FALLBACK", "false"),
        ],
    )
    .unwrap();
    assert_eq!(config.auth.cache_ttl, Duration::from_secs(5));
    assert_eq!(config.node_id, "A6X2OX");
    assert!(!config.auth.basic_auth_fallback);
}

#[test]
fn errors_name_the_key_and_value() {
    let m = message("[auth]\ncache_ttl = \"soon\"\n");
    assert!(m.contains("auth.cache_ttl") && m.contains("soon"), "{m}");
    let m = message("[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    assert!(
        m.contains("proxy.trusted_proxies") && m.contains("10.0.0.0/33"),
        "{m}"
    );
    let m = message("[rate_limit]\ndefault = \"0/1m\"\n");
    assert!(
        m.contains("rate_limit.default") && m.contains("0/1m"),
        "{m}"
    );
    let m = message("[upstream]\nidentity = \"magic\"\n");
    assert!(
        m.contains("upstream.identity") && m.contains("magic"),
        "{m}"
    );
    let m = message("[audit]\ncoverage = \"most\"\n");
    assert!(m.contains("audit.coverage") && m.contains("most"), "{m}");
    let m = message("[log]\nlevel = \"loud\"\n");
    assert!(m.contains("log.level") && m.contains("loud"), "{m}");
    let m = message("[database]\nurl = \"mysql://root:hunter2@db/x\"\n");
    assert!(m.contains("database.url") && !m.contains("hunter2"), "{m}");
}

#[test]
fn unknown_keys_and_wrong_types_are_errors() {
    let m = message("[auth]\ncache_tll = \"60s\"\n");
    assert!(m.contains("cache_tll"), "{m}");
    let m = message("[proxy]\nlisten = 8080\n");
    assert!(m.contains("proxy.listen"), "{m}");
    let m = message("nonsense = [\n");
    assert!(m.contains("config file"), "{m}");
    let m = load("", &[("TOKENGATE_AUTH__NO_SUCH_KEY", "1")])
        .unwrap_err()
        .to_string();
    assert!(m.contains("no_such_key"), "{m}");
}

/// The error of a config that takes upstream credentials with `key` as
/// `TOKENGATE_UPSTREAM__CREDENTIAL_KEY`.
fn credential_key_message(key: &str) -> String {
    load(
        "[upstream]\nidentity = \"credential\"\n",
        &[("TOKENGATE_UPSTREAM__CREDENTIAL_KEY", key)],
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn credential_identity_needs_a_valid_key() {
    let m = message("[upstream]\nidentity = \"credential\"\n");
    assert!(m.contains("upstream.credential_key"), "{m}");
    let m = credential_key_message("c2hvcnQ=");
    assert!(
        m.contains("upstream.credential_key") && !m.contains("c2hvcnQ="),
        "{m}"
    );
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let e = Config::load_with_env(Some(Path::new("/nonexistent/tokengate.toml")), Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tokengate.toml"));
}

#[test]
fn check_config_output_redacts_secrets() {
    let raw = load_raw(
        &ConfigFile::None,
        vec![
            (
                "TOKENGATE_ADMIN__TOKEN".to_owned(),
                "supersecretadmintoken".to_owned(),
            ),
            (
                "TOKENGATE_DATABASE__URL".to_owned(),
                "postgres://tg:hunter2@db/tokengate".to_owned(),
            ),
            (
                "TOKENGATE_NOTIFY__WEBHOOK_URL".to_owned(),
                "https://hooks.slack.com/services/T0/B0/webhooksecret".to_owned(),
            ),
        ],
    )
    .unwrap();
    let shown = raw.redacted_toml();
    assert!(
        !shown.contains("supersecretadmintoken")
            && !shown.contains("hunter2")
            && !shown.contains("webhooksecret"),
        "{shown}"
    );
    assert!(
        shown.contains("postgres://tg:[redacted]@db/tokengate"),
        "{shown}"
    );
}

#[test]
fn every_password_in_a_url_is_redacted() {
    for (url, shown) in [
        (
            "postgres://tg:hunter2@db/tokengate",
            "postgres://tg:[redacted]@db/tokengate",
        ),
        (
            "postgres://tg@host/db?password=hunter2",
            "postgres://tg@host/db?password=[redacted]",
        ),
        (
            "postgres://tg:hunter2@db/x?sslmode=require&password=hunter2&application_name=tg",
            "postgres://tg:[redacted]@db/x?sslmode=require&password=[redacted]&application_name=tg",
        ),
        // Names as sqlx reads them: percent-decoded; any parameter naming a password.
        (
            "postgres://db/x?pass%77ord=hunter2",
            "postgres://db/x?pass%77ord=[redacted]",
        ),
        (
            "postgres://db/x?PASSWORD=hunter2&sslpassword=hunter2",
            "postgres://db/x?PASSWORD=[redacted]&sslpassword=[redacted]",
        ),
        (
            "postgres://db/x?password=hunter2#frag",
            "postgres://db/x?password=[redacted]",
        ),
        ("postgres://:hunter2@db/x", "postgres://:[redacted]@db/x"),
        // Unescaped characters in a password.
        (
            "postgres://tg:hun@ter2@db/x",
            "postgres://tg:[redacted]@db/x",
        ),
        (
            "postgres://tg:hun/ter2@db/x",
            "postgres://tg:[redacted]@db/x",
        ),
        (
            "postgres://tg:hun?ter2@db/x",
            "postgres://tg:[redacted]@db/x",
        ),
        (
            "postgres://db:5432/x?password=hun@ter2",
            "postgres://db:5432/x?password=[redacted]",
        ),
        (
            "postgres://[::1]/x?password=hun@ter2",
            "postgres://[::1]/x?password=[redacted]",
        ),
        (
            "http://svc:hunter2@bitbucket:7990",
            "http://svc:[redacted]@bitbucket:7990",
        ),
        // A password that makes the rest read as a port and a fragment: all hidden.
        ("postgres://app:2024#Secret@db/x", "postgres://[redacted]"),
        ("postgres://app:#Secret@db/x", "postgres://[redacted]"),
        // Nothing secret: shown as it is.
        ("postgres://tg@db:5432/x", "postgres://tg@db:5432/x"),
        (
            "postgres://db/x?sslmode=require&passfile",
            "postgres://db/x?sslmode=require&passfile",
        ),
        ("sqlite://data/tokengate.db", "sqlite://data/tokengate.db"),
        ("sqlite:data/t@x.db?mode=rwc", "sqlite:data/t@x.db?mode=rwc"),
        ("", ""),
    ] {
        assert_eq!(validate::redact_url_password(url), shown, "{url}");
    }
}

#[test]
fn check_config_output_redacts_a_password_parameter() {
    let raw = load_raw(
        &ConfigFile::None,
        vec![(
            "TOKENGATE_DATABASE__URL".to_owned(),
            "postgres://tg@host/db?password=hunter2".to_owned(),
        )],
    )
    .unwrap();
    let shown = raw.redacted_toml();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(
        shown.contains("postgres://tg@host/db?password=[redacted]"),
        "{shown}"
    );
}

#[test]
fn upstream_url_refuses_a_user_and_password() {
    for url in [
        "http://svc:s3cretpw@bitbucket:7990",
        "http://svc@bitbucket:7990",
        "http://:s3cretpw@bitbucket",
    ] {
        let m = message(&format!("[upstream]\nurl = \"{url}\"\n"));
        assert!(
            m.contains("upstream.url") && m.contains("must not hold a user name or password"),
            "{m}"
        );
        assert!(!m.contains("s3cretpw"), "{m}");
    }
    // Whatever else is wrong with such a URL, its password is not shown.
    for url in [
        "https://svc:s3cretpw@bitbucket",
        "http://svc:s3cret/pw@bitbucket",
    ] {
        let m = message(&format!("[upstream]\nurl = \"{url}\"\n"));
        assert!(m.contains("upstream.url") && !m.contains("s3cret"), "{m}");
    }
    assert!(load("[upstream]\nurl = \"http://bitbucket:7990\"\n", &[]).is_ok());
}

#[test]
fn node_ids_are_stable_base36() {
    assert_eq!(
        node_id::default_node_id("bitbucket-1"),
        node_id::default_node_id("bitbucket-1")
    );
    assert_ne!(
        node_id::default_node_id("bitbucket-1"),
        node_id::default_node_id("bitbucket-2")
    );
}

#[test]
fn an_unreadable_file_shows_its_cause_once() {
    let e = Config::load_with_env(Some(Path::new("/nonexistent/tokengate.toml")), Vec::new())
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(e).context("loading"));
    assert_eq!(chain.matches("os error").count(), 1, "{chain}");
}

fn env_message(vars: &[(&str, &str)]) -> String {
    load("", vars).unwrap_err().to_string()
}

#[test]
fn kubernetes_service_links_are_ignored_with_a_warning_each() {
    let config = load(
        "",
        &[
            ("TOKENGATE_SERVICE_HOST", "10.96.0.12"),
            ("TOKENGATE_PORT", "tcp://10.96.0.12:8080"),
            ("TOKENGATE_NODE_ID", "A6X2OX"),
        ],
    )
    .unwrap();
    assert_eq!(config.node_id, "A6X2OX");
    let warnings: Vec<String> = config.warnings().collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("TOKENGATE_SERVICE_HOST"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("TOKENGATE_PORT"), "{warnings:?}");
    assert_eq!(load("", &[]).unwrap().warnings().count(), 0);
}

#[test]
fn an_unknown_key_of_a_known_section_is_an_error_naming_the_variable() {
    let m = env_message(&[("TOKENGATE_PROXY__LISTN", "0.0.0.0:8080")]);
    assert!(
        m.contains("TOKENGATE_PROXY__LISTN") && m.contains("listn"),
        "{m}"
    );
}

#[test]
fn text_keys_take_number_like_values_as_text() {
    let secret = "1234567890123456789";
    let config = load(
        "",
        &[
            ("TOKENGATE_NODE_ID", "123456"),
            ("TOKENGATE_ADMIN__TOKEN", secret),
        ],
    )
    .unwrap();
    assert_eq!(config.node_id, "123456");
    use secrecy::ExposeSecret as _;
    assert_eq!(
        config.admin.token.as_ref().map(|t| t.expose_secret()),
        Some(secret)
    );
}

#[test]
fn errors_from_the_environment_name_the_variable_not_the_file() {
    for (var, value, key) in [
        (
            "TOKENGATE_PROXY__MAX_HEADER_BYTES",
            "-5",
            "proxy.max_header_bytes",
        ),
        (
            "TOKENGATE_PROXY__MAX_HEADER_BYTES",
            "lots",
            "proxy.max_header_bytes",
        ),
        ("TOKENGATE_AUTH__CACHE_TTL", "soon", "auth.cache_ttl"),
        ("TOKENGATE_AUTH__ALLOWED_IPS", "[1]", "auth.allowed_ips"),
        ("TOKENGATE_NODE_ID", "A6X-2OX", "node_id"),
        ("TOKENGATE_LOG__LEVEL", "loud", "log.level"),
    ] {
        let m = env_message(&[(var, value)]);
        assert!(
            m.contains(&format!("environment variable {var}:"))
                && (m.contains(key) || var == "TOKENGATE_PROXY__MAX_HEADER_BYTES"),
            "{var}={value}: {m}"
        );
        assert!(!m.contains("config file"), "{var}={value}: {m}");
    }
    // A value from the file is still blamed on the file's key.
    let m = load(
        "[auth]\ncache_ttl = \"soon\"\n",
        &[("TOKENGATE_NODE_ID", "A6X2OX")],
    )
    .unwrap_err()
    .to_string();
    assert!(!m.contains("environment"), "{m}");
}

#[test]
fn errors_never_show_a_secret_from_the_environment() {
    for (var, value, secret) in [
        ("TOKENGATE_ADMIN__TOKEN", "987654321", "987654321"),
        ("TOKENGATE_ADMIN__TOKEN", "true", "true"),
        (
            "TOKENGATE_DATABASE__URL",
            "mysql://root:4242424242@db/x",
            "4242424242",
        ),
    ] {
        let m = env_message(&[(var, value)]);
        assert!(m.contains(var), "{m}");
        assert!(!m.contains(secret), "{var}={value}: {m}");
    }
    let m = credential_key_message("4242424242");
    assert!(
        m.contains("TOKENGATE_UPSTREAM__CREDENTIAL_KEY") && !m.contains("4242424242"),
        "{m}"
    );
}

const DURATION_KEYS: [(&str, &str); 8] = [
    ("proxy", "header_read_timeout"),
    ("proxy", "shutdown_grace"),
    ("upstream", "connect_timeout"),
    ("upstream", "response_timeout"),
    ("upstream", "pool_idle_timeout"),
    ("auth", "cache_ttl"),
    ("rate_limit", "redis_timeout"),
    ("notify", "check_interval"),
];

#[test]
fn every_duration_is_at_most_a_day() {
    for (section, key) in DURATION_KEYS {
        for value in ["1d", "24h", "86400s", "86400000ms"] {
            load(&format!("[{section}]\n{key} = \"{value}\"\n"), &[])
                .unwrap_or_else(|e| panic!("{section}.{key} = {value}: {e}"));
        }
        for value in ["86401s", "25h", "2d", "400000d", "110000000000000d"] {
            let m = message(&format!("[{section}]\n{key} = \"{value}\"\n"));
            assert!(
                m.contains(&format!("{section}.{key}"))
                    && m.contains(value)
                    && m.contains("at most 1d"),
                "{m}"
            );
            let var = format!("TOKENGATE_{section}__{key}").to_ascii_uppercase();
            let m = env_message(&[(&var, value)]);
            assert!(m.contains(&var) && m.contains("at most 1d"), "{m}");
        }
    }
}

#[test]
fn a_rate_limit_period_too_long_states_the_bounds() {
    let m = message("[rate_limit]\ndefault = \"5/400d\"\n");
    assert!(
        m.contains("rate_limit.default") && m.contains("from 1s to 366d"),
        "{m}"
    );
    assert!(!m.contains("at least 1s"), "{m}");
}

#[test]
fn node_ids_are_six_or_seven_upper_case_base36_characters() {
    for id in ["A6X2OX", "16JTB8N", "MKNCWM", "123456", "XXXXXXX"] {
        let config =
            load(&format!("node_id = \"{id}\"\n"), &[]).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(config.node_id, id);
    }
    for id in [
        "a6x2ox", "A6x2OX", "A6X2O", "A6X2OXAB", "", "A6X-2OX", "ÄBCDEF",
    ] {
        let m = message(&format!("node_id = \"{id}\"\n"));
        assert!(
            m.contains("node_id") && m.contains("upper-case") && m.contains("6 or 7"),
            "{id}: {m}"
        );
    }
}

#[test]
fn protected_paths_are_written_as_bitbucket_routes_them() {
    for (path, hint) in [
        ("//rest/", "/rest/"),
        ("/rest/./api/", "/rest/api/"),
        ("/%72est/", "/rest/"),
        ("/rest;x/", "/rest/"),
        ("/../rest/", "above the root"),
    ] {
        let m = message(&format!("[auth]\nprotected_paths = [\"{path}\"]\n"));
        assert!(
            m.contains("auth.protected_paths") && m.contains(path) && m.contains(hint),
            "{m}"
        );
    }
    let config = load(
        "[auth]\nprotected_paths = [\"/rest/api/\", \"/plugins/servlet\"]\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        config.auth.protected_paths,
        ["/rest/api/", "/plugins/servlet"]
    );
}
