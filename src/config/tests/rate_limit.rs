//! `[rate_limit]`: the backend keys, their errors, and the Redis password kept out of sight.

use super::*;

fn redis(toml_tail: &str) -> Result<Config, ConfigError> {
    load(
        &format!("[rate_limit]\nbackend = \"redis\"\n{toml_tail}"),
        &[],
    )
}

#[test]
fn the_local_backend_is_the_default() {
    let config = load("", &[]).unwrap();
    assert!(matches!(config.rate_limit.backend, LimitBackend::Local));
}

#[test]
fn a_redis_backend_reads_its_url_prefix_and_timeout() {
    let config = redis("redis_url = \"redis://:s3cret@redis.internal:6380/2\"\n").unwrap();
    let LimitBackend::Redis(r) = config.rate_limit.backend else {
        panic!("not redis");
    };
    use secrecy::ExposeSecret as _;
    assert_eq!(
        r.url.expose_secret(),
        "redis://:s3cret@redis.internal:6380/2"
    );
    assert_eq!(r.shown_url, "redis://:[redacted]@redis.internal:6380/2");
    assert_eq!(r.key_prefix, "tokengate:");
    assert_eq!(r.timeout, Duration::from_millis(50));

    let config = redis(
        "redis_url = \"rediss://tg:pw@redis.internal\"\nredis_key_prefix = \"eu-1:\"\nredis_timeout = \"200ms\"\n",
    )
    .unwrap();
    let LimitBackend::Redis(r) = config.rate_limit.backend else {
        panic!("not redis");
    };
    assert_eq!(r.key_prefix, "eu-1:");
    assert_eq!(r.timeout, Duration::from_millis(200));

    let config = load(
        "",
        &[
            ("TOKENGATE_RATE_LIMIT__BACKEND", "redis"),
            ("TOKENGATE_RATE_LIMIT__REDIS_URL", "redis://127.0.0.1:6379"),
        ],
    )
    .unwrap();
    assert!(matches!(config.rate_limit.backend, LimitBackend::Redis(_)));
}

#[test]
fn errors_name_the_key_and_never_show_the_password() {
    for (tail, key, words) in [
        ("", "rate_limit.redis_url", "required"),
        ("redis_url = \"\"\n", "rate_limit.redis_url", "required"),
        (
            "redis_url = \"http://:pw-1@redis.internal\"\n",
            "rate_limit.redis_url",
            "redis://",
        ),
        (
            "redis_url = \"redis://:pw-1@redis.internal/notanumber\"\n",
            "rate_limit.redis_url",
            "not a Redis URL",
        ),
        (
            "redis_url = \"rediss://:pw-1@redis.internal/#insecure\"\n",
            "rate_limit.redis_url",
            "always checked",
        ),
        (
            "redis_url = \"redis://:pw-1@h\"\nredis_timeout = \"0ms\"\n",
            "rate_limit.redis_timeout",
            "from 1ms",
        ),
        (
            "redis_url = \"redis://:pw-1@h\"\nredis_timeout = \"fast\"\n",
            "rate_limit.redis_timeout",
            "duration",
        ),
    ] {
        let m = redis(tail).unwrap_err().to_string();
        assert!(m.contains(key) && m.contains(words), "{tail}: {m}");
        assert!(!m.contains("pw-1"), "{tail}: {m}");
    }
    let m = message("[rate_limit]\nbackend = \"memcached\"\n");
    assert!(
        m.contains("rate_limit.backend") && m.contains("\"local\" or \"redis\""),
        "{m}"
    );
    let m = message("[rate_limit]\nredis_url = \"redis://:pw-1@h\"\n");
    assert!(
        m.contains("rate_limit.redis_url")
            && m.contains("backend = \"redis\"")
            && !m.contains("pw-1"),
        "{m}"
    );
    let long = "x".repeat(257);
    let m = message(&format!("[rate_limit]\nredis_key_prefix = \"{long}\"\n"));
    assert!(m.contains("rate_limit.redis_key_prefix"), "{m}");
}

#[test]
fn an_error_from_the_environment_names_the_variable_not_the_password() {
    let m = load(
        "[rate_limit]\nbackend = \"redis\"\n",
        &[("TOKENGATE_RATE_LIMIT__REDIS_URL", "memcache://:pw-2@h/0")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        m.contains("TOKENGATE_RATE_LIMIT__REDIS_URL") && !m.contains("pw-2"),
        "{m}"
    );
}

#[test]
fn check_config_output_redacts_the_redis_password() {
    let raw = load_raw(
        &ConfigFile::None,
        [(
            "TOKENGATE_RATE_LIMIT__REDIS_URL".to_owned(),
            "rediss://tg:hunter3@redis.internal:6380/1".to_owned(),
        )],
    )
    .unwrap();
    let shown = raw.redacted_toml();
    assert!(!shown.contains("hunter3"), "{shown}");
    assert!(
        shown.contains("rediss://tg:[redacted]@redis.internal:6380/1"),
        "{shown}"
    );
}
