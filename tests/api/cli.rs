//! The `token` and `credential` commands, through the real binary on an SQLite file:
//! the lifecycle with human and JSON output, audit events with actor `cli`, bad arguments
//! (exit 2, store unchanged), the expiry policy, credentials from stdin, and `--help`.

mod store;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use chrono::Utc;
use secrecy::ExposeSecret as _;
use serde_json::Value;
use tempfile::TempDir;
use tokengate::audit::{AuditKind, AuditQuery};
use tokengate::store::{Store, TokenQuery};
use tokengate::token::TokenRecord;
use tokengate::vault::CredentialKey;

use crate::support::command::{Run, run_tokengate};

/// A config and an SQLite file for one test.
struct Setup {
    dir: TempDir,
    config: PathBuf,
    store: Arc<dyn Store>,
}

impl Setup {
    /// A fresh database and a config file with `extra` TOML appended.
    async fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!("sqlite://{}", dir.path().join("tokengate.db").display());
        let config = dir.path().join("tokengate.toml");
        let text = format!("node_id = \"CLITST\"\n{extra}\n[database]\nurl = \"{url}\"\n");
        std::fs::write(&config, text).expect("writing the config");
        let store = tokengate::store::connect(&url, 2)
            .await
            .expect("opening the store");
        store.migrate().await.expect("migrating");
        Self { dir, config, store }
    }

    /// A config naming the existing database at `url`, as it is (not migrated).
    async fn with_database(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("tokengate.toml");
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        let text = format!(
            "node_id = \"CLITST\"\n[upstream]\ncredential_key = \"{key}\"\n[database]\nurl = \"{url}\"\n"
        );
        std::fs::write(&config, text).expect("writing the config");
        let store = tokengate::store::connect_existing(url, 1)
            .await
            .expect("a store");
        Self { dir, config, store }
    }

    /// Runs `tokengate ARGS --config PATH` with `stdin`.
    fn run(&self, args: &[&str], stdin: &str) -> Run {
        let config = self.config.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--config", &config]);
        run_tokengate(self.dir.path(), &all, stdin)
    }

    async fn tokens(&self) -> Vec<TokenRecord> {
        let query = TokenQuery {
            user: None,
            state: None,
            now: Utc::now(),
            limit: 1000,
            after: None,
        };
        self.store.list_tokens(&query).await.expect("listing")
    }
}

/// The value of a `name:` line of human output.
fn field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name}: line in\n{out}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_lifecycle_from_the_command_line() {
    let setup = Setup::new("").await;
    let created = setup.run(
        &[
            "token",
            "create",
            "--user",
            "automation-user",
            "--description",
            "CI token",
            "--scope",
            "read-write",
            "--expires-in",
            "90d",
            "--allow-ip",
            "10.0.0.0/8",
            "--allow-ip",
            "192.168.1.7",
            "--rate-limit",
            "5/5m",
        ],
        "",
    );
    let out = created.ok();
    let secret = field(out, "token").to_owned();
    let id = field(out, "id").to_owned();
    assert!(secret.starts_with(&format!("tgt_{id}_")), "{out}");
    assert!(out.contains("shown only this once"));
    assert_eq!(field(out, "allowed IPs"), "10.0.0.0/8, 192.168.1.7/32");
    assert_eq!(field(out, "rate limit"), "5/5m");
    assert_eq!(field(out, "scope"), "read-write");
    let record = setup
        .store
        .get_token(&tokengate::token::TokenId::parse(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokengate::token::verify_secret(&secret, &record.secret_hash),
        "the printed secret is the stored one"
    );
    let days = (record.expires_at.unwrap() - record.created_at).num_days();
    assert_eq!(days, 90);

    let json = setup
        .run(
            &[
                "token",
                "create",
                "--user",
                "bob",
                "--description",
                "second",
                "--json",
            ],
            "",
        )
        .json();
    let second_secret = json["token"].as_str().unwrap().to_owned();
    let second_id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json["scope"], "read-only");
    assert_eq!(json["state"], "active");
    assert_eq!(json["rate_limit"], Value::Null);

    let table = setup.run(&["token", "list"], "");
    let table = table.ok();
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&id) && table.contains(&second_id) && table.contains("automation-user"),
        "{table}"
    );
    let only_bob = setup
        .run(&["token", "list", "--user", "bob", "--json"], "")
        .json();
    assert_eq!(only_bob["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(only_bob["tokens"][0]["id"], second_id.as_str());
    assert_eq!(only_bob["next_cursor"], Value::Null);
    let mut without_secret = json.clone();
    without_secret.as_object_mut().unwrap().remove("token");
    assert_eq!(
        only_bob["tokens"][0], without_secret,
        "list --json prints the API's record"
    );
    let shown = setup
        .run(&["token", "show", &second_id, "--json"], "")
        .json();
    assert_eq!(shown, without_secret);
    let human = setup.run(&["token", "show", &id], "");
    assert_eq!(field(human.ok(), "state"), "active");

    let revoked = setup.run(&["token", "revoke", &id], "");
    assert!(revoked.ok().contains("revoked token"), "{revoked:?}");
    let again = setup.run(&["token", "revoke", &id], "");
    assert!(again.ok().contains("already revoked"), "{again:?}");
    assert_eq!(
        field(setup.run(&["token", "show", &id], "").ok(), "state"),
        "revoked"
    );
    let revoked_only = setup
        .run(&["token", "list", "--state", "revoked", "--json"], "")
        .json();
    assert_eq!(revoked_only["tokens"].as_array().unwrap().len(), 1);
    let active_table = setup.run(&["token", "list", "--state", "active"], "");
    assert!(!active_table.ok().contains(&id));

    // The secrets appear in no output but their create's.
    for args in [
        &["token", "list"][..],
        &["token", "list", "--json"],
        &["token", "show", &id],
        &["token", "show", &second_id, "--json"],
    ] {
        let run = setup.run(args, "");
        for s in [&secret, &second_secret] {
            assert!(
                !run.stdout.contains(&s[17..]) && !run.stderr.contains(&s[17..]),
                "{args:?} showed a secret"
            );
        }
    }

    // Audit events, straight into the store, with actor `cli`.
    let events = setup
        .store
        .query_audit(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let kinds: Vec<AuditKind> = events.iter().map(|e| e.event.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::TokenRevoked,
            AuditKind::TokenCreated,
            AuditKind::TokenCreated
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e.event.actor.as_deref() == Some("cli") && e.event.node_id == "CLITST")
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains(&secret[17..])
    );
}

#[tokio::test]
async fn changes_are_appended_to_the_audit_file_too() {
    let setup = Setup::new("[audit]\nfile = \"audit/tokengate-audit.log\"").await;
    let created = setup
        .run(
            &[
                "token",
                "create",
                "--user",
                "a",
                "--description",
                "d",
                "--json",
            ],
            "",
        )
        .json();
    let id = created["id"].as_str().unwrap();
    setup.run(&["token", "revoke", id], "").ok();

    let file = setup.dir.path().join("audit/tokengate-audit.log");
    let text = std::fs::read_to_string(&file).expect("the audit file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let actions: Vec<_> = lines
        .iter()
        .map(|l| l["auditType"]["actionI18nKey"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tokengate.audit.action.token_created",
            "tokengate.audit.action.token_revoked"
        ]
    );
    assert!(lines.iter().all(|l| l["node"] == "CLITST"), "{text}");
    assert!(!text.contains(&created["token"].as_str().unwrap()[17..]));
}

#[tokio::test]
async fn audit_coverage_off_records_nothing() {
    let setup =
        Setup::new("[audit]\ncoverage = \"off\"\nfile = \"audit/tokengate-audit.log\"").await;
    setup
        .run(
            &["token", "create", "--user", "a", "--description", "d"],
            "",
        )
        .ok();
    let events = setup
        .store
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(events.is_empty());
    assert!(!setup.dir.path().join("audit/tokengate-audit.log").exists());
}

#[tokio::test]
async fn bad_arguments_exit_2_and_change_nothing() {
    let setup = Setup::new("").await;
    let long = "x".repeat(256);
    let create = |extra: &[&str]| {
        let mut args = vec!["token", "create"];
        args.extend_from_slice(extra);
        setup.run(&args, "")
    };
    // One entry over the allow-list's limit, which the admin API refuses too.
    let mut too_many = vec!["--user", "a", "--description", "d"];
    for _ in 0..257 {
        too_many.extend(["--allow-ip", "10.0.0.0/8"]);
    }
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (too_many, "--allow-ip"),
        (vec!["--description", "d"], "--user"),
        (vec!["--user", "a"], "--description"),
        (
            vec!["--user", "a", "--description", "d", "--scope", "admin"],
            "--scope",
        ),
        (
            vec![
                "--user",
                "a",
                "--description",
                "d",
                "--allow-ip",
                "10.0.0.0/33",
            ],
            "--allow-ip",
        ),
        (
            vec![
                "--user",
                "a",
                "--description",
                "d",
                "--allow-ip",
                "example.com",
            ],
            "--allow-ip",
        ),
        // Host bits set: refused as the typo it likely is, naming the network meant.
        (
            vec![
                "--user",
                "a",
                "--description",
                "d",
                "--allow-ip",
                "10.1.2.3/8",
            ],
            "host bits set: write the network as 10.0.0.0/8",
        ),
        (
            vec!["--user", "a", "--description", "d", "--rate-limit", "0/5m"],
            "--rate-limit",
        ),
        (
            vec!["--user", "a", "--description", "d", "--rate-limit", "5"],
            "--rate-limit",
        ),
        (
            vec!["--user", "a", "--description", "d", "--expires-in", "90"],
            "--expires-in",
        ),
        (
            vec!["--user", "a", "--description", "d", "--expires-in", "0d"],
            "--expires-in",
        ),
        (vec!["--user", "two words", "--description", "d"], "--user"),
        (vec!["--user", "", "--description", "d"], "--user"),
        (vec!["--user", "a", "--description", ""], "--description"),
        (vec!["--user", "a", "--description", &long], "--description"),
        (
            vec!["--user", "a", "--description", "two\nlines"],
            "--description",
        ),
        (
            vec!["--user", "a", "--description", "d", "--colour", "red"],
            "--colour",
        ),
    ];
    for (args, mentions) in &cases {
        create(args).fails(2, mentions);
    }
    setup
        .run(&["token", "list", "--state", "stale"], "")
        .fails(2, "--state");
    setup
        .run(&["token", "list", "--user", "a b"], "")
        .fails(2, "--user");
    setup.run(&["token", "show"], "").fails(2, "ID");
    assert!(setup.tokens().await.is_empty());

    setup
        .run(&["token", "show", "000000000000"], "")
        .fails(1, "no token");
    setup
        .run(&["token", "revoke", "not-an-id"], "")
        .fails(1, "no token");
}

#[tokio::test]
async fn max_lifetime_days_applies_to_the_cli() {
    let setup = Setup::new("[auth]\nmax_lifetime_days = 30").await;
    let base = ["token", "create", "--user", "a", "--description", "d"];
    setup.run(&base, "").fails(2, "30 days");
    setup
        .run(&[&base[..], &["--expires-in", "31d"]].concat(), "")
        .fails(2, "--expires-in");
    assert!(setup.tokens().await.is_empty());
    setup
        .run(&[&base[..], &["--expires-in", "30d"]].concat(), "")
        .ok();
}

#[tokio::test]
async fn credential_set_reads_one_line_from_stdin() {
    let credential = "BBDC-Mzk0NDEyOTc2MzE4OnRoaXMtaXMtc2VjcmV0";
    let unkeyed = Setup::new("").await;
    unkeyed
        .run(
            &["credential", "set", "--user", "alice"],
            &format!("{credential}\n"),
        )
        .fails(2, "TOKENGATE_UPSTREAM__CREDENTIAL_KEY");

    let key = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let setup = Setup::new(&format!("[upstream]\ncredential_key = \"{key}\"")).await;
    setup
        .run(&["credential", "set", "--user", "alice"], "")
        .fails(2, "empty");
    setup
        .run(&["credential", "set", "--user", "alice"], "\n")
        .fails(2, "empty");
    setup
        .run(&["credential", "set", "--user", "two words"], "c\n")
        .fails(2, "--user");
    assert_eq!(setup.store.get_credential("alice").await.unwrap(), None);

    let run = setup.run(
        &["credential", "set", "--user", "alice"],
        &format!("{credential}\r\n"),
    );
    assert!(!run.ok().contains(credential) && !run.stderr.contains(credential));
    let sealed = setup
        .store
        .get_credential("alice")
        .await
        .unwrap()
        .expect("stored")
        .sealed;
    let key = CredentialKey::from_secret(&key.into()).unwrap();
    assert_eq!(
        key.open("alice", &sealed).unwrap().expose_secret(),
        credential
    );
    let events = setup
        .store
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].event.kind, events[0].event.actor.as_deref()),
        (AuditKind::CredentialSet, Some("cli"))
    );
}

#[tokio::test]
async fn help_explains_every_flag() {
    let setup = Setup::new("").await;
    let help = setup.run(&["token", "create", "--help"], "");
    for flag in [
        "--user",
        "--description",
        "--scope",
        "--expires-in",
        "--allow-ip",
        "--rate-limit",
        "--json",
        "--config",
    ] {
        assert!(
            help.ok().contains(flag),
            "{flag} missing from\n{}",
            help.stdout
        );
    }
    assert!(help.stdout.contains("read-only") && help.stdout.contains("5/5m"));
    let help = setup.run(&["token", "--help"], "");
    for command in ["create", "list", "show", "revoke"] {
        assert!(
            help.ok().contains(command),
            "{command} missing from\n{}",
            help.stdout
        );
    }
    let help = setup.run(&["credential", "set", "--help"], "");
    assert!(help.ok().contains("stdin"));
}
