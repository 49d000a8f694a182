//! Change notification across processes: a second, independently connected store on the same
//! database stands in for another gateway or the CLI.

use std::time::Duration;

use chrono::Utc;
use sqlx::postgres::PgListener;
use tokengate::store::{self, Change, Store, StoreError, TokenWrite};
use tokengate::token::{TokenId, TokenPatch};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

use super::{at, new_token};
use crate::support::both_backends;
use crate::support::forwarder::Forwarder;

both_backends!(url:
    watch_hears_changes_made_by_another_instance,
    watch_ends_when_the_store_is_dropped,
    unreadable_values_are_corrupt_naming_the_column,
);

/// The README's promise: every replica hears of a change within a second.
const WITHIN: Duration = Duration::from_secs(1);

/// A heartbeat goes out every 3 s and must be answered within 2 s: a silent connection is noticed
/// within 5 s. Three times that, for a loaded machine.
const A_FEW_HEARTBEATS: Duration = Duration::from_secs(15);

async fn next_change(rx: &mut Receiver<Change>) -> Change {
    timeout(WITHIN, rx.recv())
        .await
        .expect("no change announced within a second")
        .expect("the watch stream ended")
}

/// Inserts a token through `cli` and waits up to a second for the next token change, passing
/// over `All` and credential changes: the id heard and the id inserted, or `None` when no token
/// change was heard in time.
async fn insert_and_listen(
    cli: &dyn Store,
    changes: &mut Receiver<Change>,
) -> Option<(TokenId, TokenId)> {
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    cli.insert_token(&t).await.unwrap();
    let heard = timeout(WITHIN, async {
        loop {
            match changes.recv().await.expect("the watch stream ended") {
                Change::All | Change::Credential(_) => {}
                Change::Token(id) => break id,
            }
        }
    })
    .await;
    heard.ok().map(|id| (id, t.id))
}

async fn watch_hears_changes_made_by_another_instance(url: String) {
    let gateway = store::connect(&url, 2).await.unwrap();
    let cli = store::connect(&url, 2).await.unwrap();
    let mut changes = gateway.watch().await.unwrap();

    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    cli.insert_token(&t).await.unwrap();
    assert_eq!(next_change(&mut changes).await, Change::Token(t.id.clone()));

    let patch = TokenPatch {
        description: Some("renamed".into()),
        ..TokenPatch::default()
    };
    let updated = cli.update_token(&t.id, &patch).await.unwrap();
    assert!(matches!(updated, TokenWrite::Written { .. }));
    assert_eq!(next_change(&mut changes).await, Change::Token(t.id.clone()));

    let revoked = cli.revoke_token(&t.id, Utc::now()).await.unwrap();
    assert!(matches!(revoked, TokenWrite::Written { .. }));
    assert_eq!(next_change(&mut changes).await, Change::Token(t.id.clone()));
    let seen = gateway.get_token(&t.id).await.unwrap().unwrap();
    assert!(seen.revoked_at.is_some());

    // A second watcher on the same store hears the same changes, and only new ones.
    let mut second = gateway.watch().await.unwrap();
    let other = new_token("u", at("2024-01-01T00:00:00Z"));
    cli.insert_token(&other).await.unwrap();
    assert_eq!(
        next_change(&mut second).await,
        Change::Token(other.id.clone())
    );
    assert_eq!(
        next_change(&mut changes).await,
        Change::Token(other.id.clone())
    );

    // A stored credential, set or replaced, is announced by its user.
    cli.put_credential("alice", b"sealed", false).await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Credential("alice".into())
    );
    cli.put_credential("alice", b"sealed again", false)
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        Change::Credential("alice".into())
    );

    // Reading and recording use is not a change.
    cli.record_last_used(&[store::LastUse {
        id: other.id.clone(),
        at: Utc::now(),
        ip: "10.0.0.1".parse().unwrap(),
    }])
    .await
    .unwrap();
    let unknown = TokenId::parse("000000000000").unwrap();
    assert_eq!(
        cli.revoke_token(&unknown, Utc::now()).await.unwrap(),
        TokenWrite::Unknown
    );
    let marker = new_token("u", at("2024-01-01T00:00:00Z"));
    cli.insert_token(&marker).await.unwrap();
    assert_eq!(next_change(&mut changes).await, Change::Token(marker.id));
}

async fn watch_ends_when_the_store_is_dropped(url: String) {
    let gateway = store::connect(&url, 2).await.unwrap();
    let mut changes = gateway.watch().await.unwrap();
    drop(gateway);
    let end = timeout(WITHIN, changes.recv())
        .await
        .expect("the watch stream did not end");
    assert_eq!(end, None);
}

fn corrupt_column<T: std::fmt::Debug>(r: Result<T, StoreError>) -> &'static str {
    match r {
        Err(StoreError::Corrupt { column, .. }) => column,
        other => panic!("expected a corrupt value, got {other:?}"),
    }
}

async fn unreadable_values_are_corrupt_naming_the_column(url: String) {
    let store = store::connect(&url, 2).await.unwrap();
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    store.insert_token(&t).await.unwrap();
    crate::support::execute_raw(
        &url,
        "UPDATE tokens SET allowed_ips = '10.0.0.0/8,not-a-cidr'",
    )
    .await;
    assert_eq!(corrupt_column(store.get_token(&t.id).await), "allowed_ips");

    crate::support::execute_raw(
        &url,
        "UPDATE tokens SET allowed_ips = '', last_used_ip = 'nowhere'",
    )
    .await;
    assert_eq!(corrupt_column(store.get_token(&t.id).await), "last_used_ip");

    crate::support::execute_raw(&url, "UPDATE tokens SET last_used_ip = NULL, rate_limit_requests = 0, rate_limit_period_seconds = 60").await;
    assert_eq!(
        corrupt_column(store.get_token(&t.id).await),
        "rate_limit_requests"
    );

    crate::support::execute_raw(&url, "UPDATE tokens SET rate_limit_requests = NULL, rate_limit_period_seconds = NULL, id = 'Not An Id!'").await;
    let query = store::TokenQuery {
        user: None,
        state: None,
        now: Utc::now(),
        limit: 10,
        after: None,
    };
    assert_eq!(corrupt_column(store.list_tokens(&query).await), "id");
}

/// A lost `LISTEN` connection is reported as `Change::All` once the watcher has re-subscribed
/// (for the changes made in between), and notifications resume.
#[tokio::test]
async fn postgres_watch_reports_a_lost_connection_and_recovers() {
    let url = crate::support::fresh_postgres_url().await;
    let gateway = store::connect(&url, 2).await.unwrap();
    let cli = store::connect(&url, 2).await.unwrap();
    let mut changes = gateway.watch().await.unwrap();

    crate::support::execute_raw(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .await;
    let lost = timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("loss not reported once re-subscribed");
    assert_eq!(lost, Some(Change::All));

    // A change made before the watcher re-subscribed is covered by a further `All`; keep
    // making changes until one is heard.
    for _ in 0..10 {
        if let Some((id, inserted)) = insert_and_listen(&*cli, &mut changes).await {
            assert_eq!(id, inserted);
            return;
        }
    }
    panic!("notifications did not resume after the connection was lost");
}

/// A `LISTEN` connection that goes silent without closing (a NAT or firewall that forgot it,
/// so no error ever arrives) is noticed by the watcher's heartbeat within a few heartbeats; the
/// watcher subscribes again, reports `Change::All` for what it may have missed, and hears
/// changes. Heartbeats themselves are never reported.
#[tokio::test]
async fn postgres_watch_notices_a_connection_that_went_silent() {
    let url = crate::support::fresh_postgres_url().await;
    let network = Forwarder::start(&url).await;
    let gateway = store::connect(&network.url(&url), 2).await.unwrap();
    let cli = store::connect(&url, 2).await.unwrap();
    let mut changes = gateway.watch().await.unwrap();

    // Two heartbeats go by (seen on their channel), and the first change reported is the
    // token's: neither heartbeat was taken for a change.
    let mut observer = PgListener::connect(&url).await.unwrap();
    observer.listen("tokengate_heartbeat").await.unwrap();
    for _ in 0..2 {
        timeout(A_FEW_HEARTBEATS, observer.recv())
            .await
            .expect("no heartbeat on its channel")
            .unwrap();
    }
    let t = new_token("u", at("2024-01-01T00:00:00Z"));
    cli.insert_token(&t).await.unwrap();
    assert_eq!(next_change(&mut changes).await, Change::Token(t.id.clone()));

    // The path goes silent; a revocation made now cannot be heard, so everything cached must
    // be forgotten once the watcher is subscribed again.
    network.stall();
    let revoked = cli.revoke_token(&t.id, Utc::now()).await.unwrap();
    assert!(matches!(revoked, TokenWrite::Written { .. }));
    let noticed = timeout(A_FEW_HEARTBEATS, changes.recv())
        .await
        .expect("the silent connection was not noticed within a few heartbeats");
    assert_eq!(noticed, Some(Change::All));

    // Subscribed again over a new connection: changes are heard again.
    let heard = timeout(A_FEW_HEARTBEATS, async {
        loop {
            if let Some(heard) = insert_and_listen(&*cli, &mut changes).await {
                break heard;
            }
        }
    })
    .await
    .expect("changes were not heard again after the connection went silent");
    assert_eq!(heard.0, heard.1);
}
