//! The SQLite audit batch insert: multi-row `INSERT … VALUES` statements of a few fixed sizes
//! in one transaction. SQLite unpacks bound values far more cheaply than a JSON array (which
//! PostgreSQL gets instead), and with few distinct statement texts each is prepared once per
//! connection and then found in sqlx's statement cache.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, SqlitePool};

use crate::audit::AuditEvent;
use crate::store::StoreError;
use crate::store::rows::floor_ms;
use crate::store::sql::{AUDIT_INSERT, storable, storable_json};

/// Writes `events` in one transaction: all of them or, on an error, none.
pub(super) async fn insert(pool: &SqlitePool, events: &[AuditEvent]) -> Result<(), StoreError> {
    let rows = bind_rows(events);
    let mut tx = pool.begin().await?;
    for (statement, chunk) in chunks(&rows) {
        let mut args = SqliteArguments::default();
        args.reserve(chunk.len() * Row::VALUES, 0);
        for row in chunk {
            args.add(row.millis).map_err(sqlx::Error::Encode)?;
            for text in &row.text {
                args.add(text.clone()).map_err(sqlx::Error::Encode)?;
            }
        }
        sqlx::query_with(statement, args).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An event as the values bound for it, in the column order of [`AUDIT_INSERT`]. Text is held
/// as shared `Arc<str>`: binding one copies nothing, and a value that repeats across a batch
/// (a token's user and id, the node, the type, the attributes, the client address) is
/// allocated once per batch instead of once per event.
struct Row {
    /// The time, integer unix milliseconds.
    millis: i64,
    text: [Option<Arc<str>>; 11],
}

impl Row {
    /// Values bound per row: the time and the text.
    const VALUES: usize = 12;
}

/// `events` as rows to bind, with U+0000 replaced as in every stored audit text.
fn bind_rows(events: &[AuditEvent]) -> Vec<Row> {
    let mut known = HashSet::<Arc<str>, foldhash::fast::RandomState>::default();
    let mut shared = |text: &str| -> Arc<str> {
        if let Some(known) = known.get(text) {
            return Arc::clone(known);
        }
        let text: Arc<str> = Arc::from(text);
        known.insert(Arc::clone(&text));
        text
    };
    let mut ip = String::new();
    let mut json = Vec::new();
    events
        .iter()
        .map(|e| {
            let mut text = |t: Option<&str>| storable(t).map(|t| shared(&t));
            let kind = text(Some(e.kind.as_str()));
            let outcome = text(Some(e.outcome.as_str()));
            let user = text(e.user.as_deref());
            let token_id = text(e.token_id.as_deref());
            let method = text(e.method.as_deref());
            let path = text(e.path.as_deref());
            let node_id = text(Some(&e.node_id));
            let actor = text(e.actor.as_deref());
            // Unique to each request: not worth a lookup.
            let request_id = storable(e.request_id.as_deref()).map(|t| Arc::from(&*t));
            let client_ip = e.client_ip.map(|addr| {
                ip.clear();
                let _ = write!(ip, "{addr}");
                shared(&ip)
            });
            json.clear();
            serde_json::to_writer(&mut json, &storable_json(&e.attributes))
                .expect("a JSON value serializes");
            let attributes = Some(shared(
                std::str::from_utf8(&json).expect("serde_json writes UTF-8"),
            ));
            Row {
                millis: floor_ms(e.time).timestamp_millis(),
                text: [
                    kind, outcome, user, token_id, client_ip, method, path, request_id, node_id,
                    actor, attributes,
                ],
            }
        })
        .collect()
}

/// The sizes of the statements [`chunks`] cuts a batch into, largest first: any batch takes at
/// most three statements of each smaller size.
const SIZES: [usize; 5] = [256, 64, 16, 4, 1];

/// `rows` cut into runs of the sizes in [`SIZES`], in order, each with the text of its
/// `INSERT INTO audit_events … VALUES`: one row of [`Row::VALUES`] `?` placeholders per event.
fn chunks(mut rows: &[Row]) -> impl Iterator<Item = (&'static str, &[Row])> {
    static STATEMENTS: OnceLock<[String; SIZES.len()]> = OnceLock::new();
    let statements = STATEMENTS.get_or_init(|| {
        let row = format!("({})", ["?"; Row::VALUES].join(", "));
        SIZES.map(|n| format!("{AUDIT_INSERT}VALUES {}", vec![row.as_str(); n].join(", ")))
    });
    std::iter::from_fn(move || {
        let (size, statement) = SIZES
            .iter()
            .zip(statements)
            .find(|(size, _)| **size <= rows.len())?;
        let (chunk, rest) = rows.split_at(*size);
        rows = rest;
        Some((statement.as_str(), chunk))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once_in_order_with_a_statement_of_their_size() {
        for n in [0, 1, 3, 4, 5, 255, 256, 257, 1000, 1024] {
            let rows: Vec<Row> = (0..n)
                .map(|i| Row {
                    millis: i as i64,
                    text: Default::default(),
                })
                .collect();
            let mut seen = Vec::new();
            let mut statements = 0;
            for (statement, chunk) in chunks(&rows) {
                assert_eq!(statement.matches('?').count(), chunk.len() * Row::VALUES);
                assert!(SIZES.contains(&chunk.len()));
                seen.extend(chunk.iter().map(|r| r.millis));
                statements += 1;
            }
            assert_eq!(seen, (0..n as i64).collect::<Vec<_>>(), "{n} rows");
            assert!(
                statements <= n / 256 + 12,
                "{n} rows took {statements} statements"
            );
        }
    }

    #[test]
    fn repeated_text_is_shared_within_a_batch() {
        let event = |request: &str| AuditEvent {
            time: chrono::Utc::now(),
            kind: crate::audit::AuditKind::AuthSucceeded,
            outcome: crate::audit::AuditOutcome::Allowed,
            user: Some("alice".into()),
            token_id: Some("abcdefghijkl".into()),
            client_ip: Some("10.0.0.1".parse().unwrap()),
            method: Some("GET".into()),
            path: Some("/rest/api/1.0/projects".into()),
            request_id: Some(request.into()),
            node_id: "N1".into(),
            actor: None,
            attributes: serde_json::json!({ "scope": "read-only" }),
        };
        let rows = bind_rows(&[event("r1"), event("r2")]);
        for (column, (a, b)) in rows[0].text.iter().zip(&rows[1].text).enumerate() {
            match (a, b) {
                (Some(a), Some(b)) if column == 7 => assert!(!Arc::ptr_eq(a, b) && a != b),
                (Some(a), Some(b)) => assert!(Arc::ptr_eq(a, b), "column {column}"),
                (None, None) => {}
                _ => panic!("column {column} differs"),
            }
        }
        assert_eq!(rows[0].text[4].as_deref(), Some("10.0.0.1"));
        assert_eq!(
            rows[0].text[10].as_deref(),
            Some(r#"{"scope":"read-only"}"#)
        );
    }
}
