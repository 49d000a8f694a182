//! The CLI's everyday commands on both stores, through the real binary: `token update` and
//! `token rotate`, `audit` in its three formats with its filters, `credential list` and
//! `credential delete`, and the completion scripts and manual pages, which need no config.
//! Bad input exits 2 with a message naming the flag, and changes nothing.

use std::path::PathBuf;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;

use crate::support::app::{Backend, fresh_database};
use crate::support::both_backends;
use crate::support::command::{Run, run_tokengate};

/// A config file on a fresh database of one backend.
struct Setup {
    dir: TempDir,
    config: PathBuf,
    _db: Option<TempDir>,
}

impl Setup {
    async fn new(backend: Backend) -> Self {
        let (url, db) = fresh_database(backend).await;
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("tokengate.toml");
        let key = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
        let text = format!(
            "node_id = \"CLIOPS\"\n[upstream]\ncredential_key = \"{key}\"\n\
             [database]\nurl = \"{url}\"\n"
        );
        std::fs::write(&config, text).expect("writing the config");
        Self {
            dir,
            config,
            _db: db,
        }
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, "")
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Run {
        let config = self.config.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--config", &config]);
        run_tokengate(self.dir.path(), &all, stdin)
    }
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a time").parse().expect("RFC 3339")
}

both_backends!(
    update_and_rotate_from_the_command_line,
    the_audit_trail_from_the_command_line,
    credentials_are_listed_and_deleted_from_the_command_line,
);

async fn update_and_rotate_from_the_command_line(backend: Backend) {
    let setup = Setup::new(backend).await;
    let created = setup
        .run(&[
            "token",
            "create",
            "--user",
            "alice",
            "--description",
            "CI",
            "--json",
        ])
        .json();
    let id = created["id"].as_str().unwrap().to_owned();

    let updated = setup
        .run(&[
            "token",
            "update",
            &id,
            "--description",
            "CI pipeline",
            "--expires-in",
            "30d",
            "--allow-ip",
            "10.0.0.0/8",
            "--allow-ip",
            "192.168.1.7",
            "--rate-limit",
            "5/5m",
            "--json",
        ])
        .json();
    assert_eq!(updated["description"], "CI pipeline");
    assert_eq!(
        updated["allowed_ips"],
        serde_json::json!(["10.0.0.0/8", "192.168.1.7/32"])
    );
    assert_eq!(
        updated["rate_limit"],
        serde_json::json!({"requests": 5, "period_seconds": 300})
    );
    let days = (time(&updated["expires_at"]) - Utc::now()).num_hours();
    assert!((29 * 24..=30 * 24).contains(&days), "{updated}");
    let human = setup.run(&["token", "update", &id, "--description", "CI 2"]);
    assert!(
        human.ok().contains("updated token") && human.ok().contains("CI 2"),
        "{human:?}"
    );

    // Bad input: exit 2, a message naming the flag, nothing changed.
    setup
        .run(&["token", "update", &id])
        .fails(2, "nothing to change");
    setup
        .run(&["token", "update", &id, "--rate-limit", "5/0s"])
        .fails(2, "--rate-limit");
    setup
        .run(&["token", "update", &id, "--expires-in", "1d", "--no-expiry"])
        .fails(2, "--no-expiry");
    setup
        .run(&["token", "update", &id, "--description", "two\nlines"])
        .fails(2, "--description");
    setup
        .run(&["token", "update", "zzzzzzzzzzzz", "--description", "x"])
        .fails(1, "no token has the id");
    let shown = setup.run(&["token", "show", &id, "--json"]).json();
    assert_eq!(shown["description"], "CI 2");
    assert_eq!(shown["rate_limit"]["requests"], 5);

    // Clearing: any address, the default quota, no expiry.
    let cleared = setup
        .run(&[
            "token",
            "update",
            &id,
            "--any-ip",
            "--default-rate-limit",
            "--no-expiry",
            "--json",
        ])
        .json();
    assert_eq!(cleared["allowed_ips"], serde_json::json!([]));
    assert_eq!(cleared["rate_limit"], Value::Null);
    assert_eq!(cleared["expires_at"], Value::Null);

    // Rotate with a grace: the old token ends an hour from now.
    let rotated = setup
        .run(&["token", "rotate", &id, "--grace", "1h", "--json"])
        .json();
    let new_id = rotated["id"].as_str().unwrap().to_owned();
    assert!(
        rotated["token"]
            .as_str()
            .unwrap()
            .starts_with(&format!("tgt_{new_id}_"))
    );
    assert_eq!(rotated["description"], "CI 2");
    assert_eq!(rotated["replaces"]["id"], id.as_str());
    let ends = time(&rotated["replaces"]["expires_at"]) - Utc::now();
    assert!(
        ends.num_minutes() > 55 && ends.num_minutes() <= 60,
        "{rotated}"
    );

    // Without one it is revoked now; the human output shows the new secret once.
    let human = setup.run(&["token", "rotate", &new_id]);
    let out = human.ok();
    assert!(out.contains("shown only this once"), "{out}");
    assert!(
        out.contains(&format!("replaces:     {new_id}, revoked now")),
        "{out}"
    );
    let old = setup.run(&["token", "show", &new_id, "--json"]).json();
    assert_eq!(old["state"], "revoked");
    setup.run(&["token", "rotate", &new_id]).fails(1, "revoked");
    setup
        .run(&["token", "rotate", &id, "--grace", "31d"])
        .fails(2, "--grace");
    let listed = setup.run(&["token", "list", "--json"]).json();
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 3);
}

async fn the_audit_trail_from_the_command_line(backend: Backend) {
    let setup = Setup::new(backend).await;
    for user in ["alice", "bob", "carol"] {
        setup
            .run(&[
                "token",
                "create",
                "--user",
                user,
                "--description",
                "=HYPERLINK(\"x\")",
            ])
            .ok();
    }
    let created = setup
        .run(&[
            "token",
            "create",
            "--user",
            "dave",
            "--description",
            "d",
            "--json",
        ])
        .json();
    let dave = created["id"].as_str().unwrap().to_owned();
    setup.run(&["token", "revoke", &dave]).ok();

    let all = setup.run(&["audit", "--format", "json"]).json();
    let events = all.as_array().expect("a JSON array");
    assert_eq!(events.len(), 5, "{all}");
    assert_eq!(events[0]["type"], "token_revoked", "newest first");
    assert!(events.iter().all(|e| e["actor"] == "cli"));

    let table = setup.run(&["audit"]);
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("DETAILS"),
        "{table:?}"
    );
    assert_eq!(lines.len(), 6, "{table:?}");
    assert!(lines[1].contains("token_revoked") && lines[1].contains("dave"));

    let csv = setup.run(&["audit", "--format", "csv", "--type", "token_created"]);
    let rows: Vec<&str> = csv.ok().lines().collect();
    assert!(rows[0].starts_with("id,time,type,outcome,user"), "{csv:?}");
    assert_eq!(rows.len(), 5, "a header and four creations: {csv:?}");
    assert!(
        rows[1..].iter().all(|r| r.contains(",token_created,")),
        "{csv:?}"
    );

    let bob = setup
        .run(&["audit", "--user", "bob", "--format", "json"])
        .json();
    assert_eq!(bob.as_array().unwrap().len(), 1);
    let of_dave = setup
        .run(&["audit", "--token-id", &dave, "--format", "json"])
        .json();
    assert_eq!(of_dave.as_array().unwrap().len(), 2);
    let two = setup
        .run(&["audit", "--limit", "2", "--format", "json"])
        .json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    let future = setup
        .run(&["audit", "--since", "2099-01-01", "--format", "json"])
        .json();
    assert_eq!(future, serde_json::json!([]));
    let recent = setup
        .run(&["audit", "--since", "1h", "--format", "json"])
        .json();
    assert_eq!(recent.as_array().unwrap().len(), 5);
    assert!(
        setup
            .run(&["audit", "--until", "1h"])
            .ok()
            .contains("no audit events")
    );

    setup.run(&["audit", "--type", "bogus"]).fails(2, "--type");
    setup
        .run(&["audit", "--since", "yesterday"])
        .fails(2, "--since");
    setup.run(&["audit", "--limit", "0"]).fails(2, "--limit");
    setup
        .run(&["audit", "--since", "2024-06-02", "--until", "2024-06-01"])
        .fails(2, "--until");
}

async fn credentials_are_listed_and_deleted_from_the_command_line(backend: Backend) {
    let setup = Setup::new(backend).await;
    assert!(
        setup
            .run(&["credential", "list"])
            .ok()
            .contains("no stored credentials")
    );
    let secret = "BBDC-Y3JlZGVudGlhbC1vZi1hbGljZS1mb3ItdGVzdHM";
    for user in ["bob", "alice"] {
        setup
            .run_with(
                &["credential", "set", "--user", user],
                &format!("{secret}\n"),
            )
            .ok();
    }
    let table = setup.run(&["credential", "list"]);
    let out = table.ok();
    assert!(!out.contains(secret), "never the credential: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("USER"), "{out}");
    assert!(
        lines[1].starts_with("alice") && lines[1].contains(" set "),
        "{out}"
    );
    assert!(lines[2].starts_with("bob"), "{out}");
    let json = setup.run(&["credential", "list", "--json"]);
    assert!(!json.ok().contains(secret));
    let json = json.json();
    assert_eq!(json["credentials"][0]["user"], "alice");
    assert_eq!(json["credentials"][0]["provisioned"], false);

    let deleted = setup.run(&["credential", "delete", "--user", "alice"]);
    assert!(
        deleted.ok().contains("deleted the credential of alice"),
        "{deleted:?}"
    );
    setup
        .run(&["credential", "delete", "--user", "alice"])
        .fails(1, "no Bitbucket credential is stored");
    setup
        .run(&["credential", "delete", "--user", "a b"])
        .fails(2, "--user");
    let left = setup.run(&["credential", "list", "--json"]).json();
    assert_eq!(left["credentials"].as_array().unwrap().len(), 1);
    let audit = setup
        .run(&["audit", "--type", "credential_deleted", "--format", "json"])
        .json();
    assert_eq!(audit[0]["user"], "alice");
}

#[test]
fn completions_and_manual_pages_need_no_config() {
    let dir = tempfile::tempdir().unwrap();
    let bash = run_tokengate(dir.path(), &["completions", "bash"], "");
    assert!(
        bash.ok().contains("_tokengate") && bash.ok().contains("rotate"),
        "{bash:?}"
    );
    let zsh = run_tokengate(dir.path(), &["completions", "zsh"], "");
    assert!(zsh.ok().starts_with("#compdef tokengate"), "{zsh:?}");
    let fish = run_tokengate(dir.path(), &["completions", "fish"], "");
    assert!(fish.ok().contains("complete -c tokengate"), "{fish:?}");
    run_tokengate(dir.path(), &["completions", "tcsh"], "").fails(2, "tcsh");

    let man = run_tokengate(dir.path(), &["man"], "");
    assert!(man.ok().contains(".TH tokengate 1"), "{man:?}");
    assert!(man.ok().contains("backup"), "{man:?}");
    let pages = dir.path().join("man");
    run_tokengate(dir.path(), &["man", "--dir", pages.to_str().unwrap()], "").ok();
    let rotate = std::fs::read_to_string(pages.join("tokengate-token-rotate.1")).unwrap();
    assert!(rotate.contains("grace"), "{rotate}");
}
