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
use crate::store::sql::{AUDIT_INSERT, AUDIT_VALUES, AuditValue, audit_millis, audit_values};

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

/// An event as the values bound for it: its time, then [`audit_values`] as text. Text is held
/// as shared `Arc<str>`: binding one copies nothing, and a value that repeats across a batch
/// (a token's user and id, the node, the type, the attributes, the client address) is
/// allocated once per batch instead of once per event.
struct Row {
    /// The time, integer unix milliseconds.
    millis: i64,
    text: [Option<Arc<str>>; AUDIT_VALUES],
}

impl Row {
    /// Values bound per row: the time and the text.
    const VALUES: usize = 1 + AUDIT_VALUES;
}

/// `events` as rows to bind.
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
        .map(|e| Row {
            millis: audit_millis(e),
            text: audit_values(e).map(|value| match value {
                AuditValue::Text(text) => text.map(|t| shared(&t)),
                AuditValue::Unique(text) => text.map(|t| Arc::from(&*t)),
                AuditValue::Ip(addr) => addr.map(|addr| {
                    ip.clear();
                    let _ = write!(ip, "{addr}");
                    shared(&ip)
                }),
                AuditValue::Json(value) => {
                    json.clear();
                    serde_json::to_writer(&mut json, &value).expect("a JSON value serializes");
                    Some(shared(
                        std::str::from_utf8(&json).expect("serde_json writes UTF-8"),
                    ))
                }
            }),
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
