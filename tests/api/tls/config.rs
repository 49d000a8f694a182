//! The TLS keys at start: `serve` and `check-config` exit 2 naming the key of a file that
//! cannot be read or used, a pair that does not match, an expired certificate (check-config)
//! or an unreadable `upstream.ca_file`; keys of each encoding load; sub-table keys take
//! environment variables.

use std::path::Path;
use std::process::Command;

use tokengate::token::Scope;

use super::{Fixture, curl};
use crate::support::app::{
    Backend, Options, TokenOpts, run_binary, run_binary_with_env, spawn_app,
};
use crate::support::certs::tls_table;

/// A config whose proxy serves `cert` and `key`, with `extra` TOML appended.
fn config(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[proxy.tls]\ncert = \"{}\"\nkey = \"{}\"\n{extra}",
        cert.display(),
        key.display()
    )
}

#[test]
fn a_pair_that_does_not_load_exits_2_naming_the_key() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    let missing = dir.join("missing.pem");
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").expect("garbage.pem");
    let other = fx.ca.issue(7, 2099);
    let other_dir = dir.join("other");
    std::fs::create_dir(&other_dir).expect("other");
    let (other_cert, _) = other.write(&other_dir);
    let upstream_https = "[upstream]\nurl = \"https://127.0.0.1:7990\"\n";
    let cases = [
        (
            config(&missing, &fx.key, ""),
            "proxy.tls.cert",
            "cannot be read",
        ),
        (
            config(&garbage, &fx.key, ""),
            "proxy.tls.cert",
            "holds no PEM certificate",
        ),
        (
            config(&fx.cert, &missing, ""),
            "proxy.tls.key",
            "cannot be read",
        ),
        (
            config(&fx.cert, &garbage, ""),
            "proxy.tls.key",
            "holds no PEM private key",
        ),
        (
            config(&other_cert, &fx.key, ""),
            "proxy.tls.key",
            "does not hold the private key of the certificate",
        ),
        (
            format!("[proxy.tls]\ncert = \"{}\"\n", fx.cert.display()),
            "proxy.tls.key",
            "required",
        ),
        (
            format!(
                "[admin.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                missing.display(),
                fx.key.display()
            ),
            "admin.tls.cert",
            "cannot be read",
        ),
        (
            format!("{upstream_https}ca_file = \"{}\"\n", missing.display()),
            "upstream.ca_file",
            "cannot be read",
        ),
        (
            format!("{upstream_https}ca_file = \"{}\"\n", garbage.display()),
            "upstream.ca_file",
            "holds no PEM certificate",
        ),
        (
            format!("[upstream]\nca_file = \"{}\"\n", fx.ca_file.display()),
            "upstream.ca_file",
            "https://",
        ),
    ];
    for (text, key, reason) in cases {
        for command in ["serve", "check-config"] {
            let run = run_binary(&text, &[command]);
            let case = format!("{command} with\n{text}\n{run:?}");
            assert_eq!(run.status.code(), Some(2), "{case}");
            assert!(run.stderr.contains(&format!("key {key}")), "{case}");
            assert!(run.stderr.contains(reason), "{case}");
            assert_eq!(run.stderr.lines().count(), 1, "{case}");
            for secret in fx.leaf.key_pem.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!run.stderr.contains(secret), "{case}");
            }
        }
    }
}

#[test]
fn check_config_refuses_an_expired_certificate_and_names_a_good_pair() {
    let fx = Fixture::new();
    let expired = fx.ca.issue(8, 2021);
    let old = fx.dir.path().join("old");
    std::fs::create_dir(&old).expect("old");
    let (cert, key) = expired.write(&old);
    let run = run_binary(&config(&cert, &key, ""), &["check-config"]);
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(run.stderr.contains("key proxy.tls.cert"), "{run:?}");
    assert!(run.stderr.contains("expired on 2021-01-01"), "{run:?}");

    let run = run_binary(&config(&fx.cert, &fx.key, ""), &["check-config"]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(run.stdout.contains("[proxy.tls]"), "{run:?}");
    assert!(
        run.stdout
            .contains("# proxy.tls: certificate serial 11:01, expires 2099-01-01"),
        "{run:?}"
    );
}

#[test]
fn sub_table_keys_take_environment_variables() {
    let fx = Fixture::new();
    let cert = fx.cert.display().to_string();
    let key = fx.key.display().to_string();
    let run = run_binary_with_env(
        "",
        &["check-config"],
        &[
            ("TOKENGATE_PROXY__TLS__CERT", &cert),
            ("TOKENGATE_PROXY__TLS__KEY", &key),
        ],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("[proxy.tls]\ncert = \"{cert}\"\nkey = \"{key}\"")),
        "{run:?}"
    );
    let run = run_binary_with_env(
        "",
        &["check-config"],
        &[("TOKENGATE_PROXY__TLS__CRT", &cert)],
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains(
            "TOKENGATE_PROXY__TLS__CRT: [proxy.tls] has no key crt; its keys are cert, key"
        ),
        "{run:?}"
    );
}

/// Runs `openssl ARGS` in `dir`, asserting success.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("running openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

// curl and git block a worker thread while the upstream, on this runtime, answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_pkcs8_pkcs1_and_sec1_serve_a_certificate_signed_by_an_internal_ca() {
    let fx = Fixture::new();
    let dir = fx.dir.path();
    // The internal CA, as an operator would make one with openssl.
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "internal-ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Internal CA",
        ],
    );
    for (name, genkey) in [
        (
            "pkcs8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "pkcs8.key",
            ][..],
        ),
        (
            "pkcs1",
            &["genrsa", "-traditional", "-out", "pkcs1.key", "2048"][..],
        ),
        (
            "sec1",
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-out",
                "sec1.key",
            ][..],
        ),
    ] {
        openssl(dir, genkey);
        let key_file = format!("{name}.key");
        let head = std::fs::read_to_string(dir.join(&key_file)).expect("the key");
        let label = match name {
            "pkcs8" => "-----BEGIN PRIVATE KEY-----",
            "pkcs1" => "-----BEGIN RSA PRIVATE KEY-----",
            _ => "-----BEGIN EC PRIVATE KEY-----",
        };
        assert!(head.contains(label), "{name}: {head}");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &key_file,
                "-subj",
                "/CN=localhost",
                "-out",
                &format!("{name}.csr"),
            ],
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("san.ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "internal-ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                "san.ext",
                "-out",
                &format!("{name}.crt"),
            ],
        );
        // The chain: the server's certificate, then the CA's.
        let chain = format!(
            "{}{}",
            std::fs::read_to_string(dir.join(format!("{name}.crt"))).expect("the certificate"),
            std::fs::read_to_string(dir.join("internal-ca.pem")).expect("the CA")
        );
        let cert = dir.join(format!("{name}-chain.pem"));
        std::fs::write(&cert, chain).expect("the chain");
        let key = dir.join(&key_file);
        let run = run_binary(&config(&cert, &key, ""), &["check-config"]);
        assert_eq!(run.status.code(), Some(0), "{name}: {run:?}");
        if name != "pkcs1" {
            continue;
        }
        let app =
            spawn_app(Options::new(Backend::Sqlite).set("proxy.tls", tls_table(&cert, &key))).await;
        let (_, token) = app
            .create_token("alice", Scope::ReadOnly, TokenOpts::default())
            .await;
        let out = curl(
            &dir.join("internal-ca.pem"),
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{response_code}",
                "-H",
                &format!("Authorization: Bearer {token}"),
                &format!("{}/rest/api/1.0/projects", app.proxy_url()),
            ],
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
        app.finish().await;
    }
}
