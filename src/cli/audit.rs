//! `tokengate audit`: the audit trail of the configured store, newest first, filtered as
//! `GET /admin/v1/audit` filters it, as a table, JSON or CSV. Events are read a page at a time
//! and printed as they come.

use std::io::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use clap::builder::PossibleValuesParser;
use clap::{Args, ValueEnum};

use super::token::{Failure, block_on, finish, open};
use crate::admin::audit::{AuditEventView, CSV_HEADER, csv_row};
use crate::audit::{AuditKind, AuditQuery, stored_text};
use crate::config::{Config, parse_duration};
use crate::lifecycle::LifecycleError;
use crate::telemetry::Escaped;

/// Most events one run prints.
const MAX_LIMIT: u32 = 1_000_000;
/// Events read from the store per page.
const PAGE: u32 = 1_000;

/// How events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// A JSON array of the admin API's events, one a line.
    Json,
    /// RFC 4180 CSV with a header line, as the admin API's `format=csv`.
    Csv,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events about this user.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Only events of this type.
    #[arg(long = "type", value_name = "TYPE", value_parser = PossibleValuesParser::new(AuditKind::ALL.map(AuditKind::as_str)))]
    kind: Option<String>,
    /// Only events about this token id.
    #[arg(long, value_name = "ID")]
    token_id: Option<String>,
    /// Events at or after this time: RFC 3339 (2024-06-01T08:00:00Z), a date (2024-06-01,
    /// midnight UTC), or a duration ago (24h, 7d).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<DateTime<Utc>>,
    /// Events before this time, written as for --since.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Print at most this many events, newest first.
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
    limit: u32,
    /// How to print the events.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// An RFC 3339 time, a date (midnight UTC), or a duration before now.
fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.to_utc());
    }
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc());
    }
    parse_duration(s)
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .ok_or_else(|| {
            format!(
                "{s:?} is neither an RFC 3339 time (2024-06-01T08:00:00Z), a date (2024-06-01) \
                 nor a duration ago (24h, 7d)"
            )
        })
}

/// Runs `tokengate audit`.
pub(super) fn run(config: &Config, args: &AuditArgs) -> ExitCode {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        return finish(Err(Failure::Usage(
            "--until: must be later than --since".into(),
        )));
    }
    finish(block_on(async {
        let lifecycle = open(config).await?;
        let store = lifecycle.store();
        let mut query = AuditQuery {
            user: args.user.as_deref().map(|u| stored_text(u).into_owned()),
            kind: args.kind.as_deref().and_then(AuditKind::parse),
            token_id: args
                .token_id
                .as_deref()
                .map(|t| stored_text(t).into_owned()),
            since: args.since,
            until: args.until,
            limit: PAGE.min(args.limit),
            after: None,
        };
        let mut printer = Printer::new(args.format);
        let mut left = args.limit;
        while left > 0 {
            query.limit = PAGE.min(left);
            let page = store
                .query_audit(&query)
                .await
                .map_err(LifecycleError::from)?;
            let full = page.len() == query.limit as usize;
            query.after = page.last().map(|e| (e.event.time, e.id));
            left -= u32::try_from(page.len()).unwrap_or(left);
            for event in page {
                printer.event(&AuditEventView::from(event))?;
            }
            if !full {
                break;
            }
        }
        printer.end()
    }))
}

/// Writes events in one format as they arrive; the table is laid out at the end.
struct Printer {
    format: Format,
    out: std::io::BufWriter<std::io::Stdout>,
    rows: Vec<[String; 8]>,
    count: usize,
}

fn written(e: &std::io::Error) -> Failure {
    Failure::Other(format!("writing to stdout: {e}"))
}

impl Printer {
    fn new(format: Format) -> Self {
        Self {
            format,
            out: std::io::BufWriter::new(std::io::stdout()),
            rows: Vec::new(),
            count: 0,
        }
    }

    fn event(&mut self, e: &AuditEventView) -> Result<(), Failure> {
        let first = self.count == 0;
        self.count += 1;
        match self.format {
            Format::Table => self.rows.push(row(e)),
            Format::Json => {
                let line = serde_json::to_string(e).expect("an event serializes");
                let lead = if first { "[\n" } else { ",\n" };
                write!(self.out, "{lead}{line}").map_err(|e| written(&e))?;
            }
            Format::Csv => {
                if first {
                    self.out
                        .write_all(CSV_HEADER.as_bytes())
                        .map_err(|e| written(&e))?;
                }
                let mut line = Vec::new();
                csv_row(&mut line, e);
                self.out.write_all(&line).map_err(|e| written(&e))?;
            }
        }
        Ok(())
    }

    fn end(mut self) -> Result<(), Failure> {
        let tail = match self.format {
            Format::Json if self.count == 0 => "[]\n".to_owned(),
            Format::Json => "\n]\n".to_owned(),
            Format::Csv if self.count == 0 => CSV_HEADER.to_owned(),
            Format::Csv => String::new(),
            Format::Table if self.rows.is_empty() => "no audit events\n".to_owned(),
            Format::Table => table(&self.rows),
        };
        self.out
            .write_all(tail.as_bytes())
            .and_then(|()| self.out.flush())
            .map_err(|e| written(&e))
    }
}

const HEADER: [&str; 8] = [
    "TIME",
    "TYPE",
    "OUTCOME",
    "USER",
    "TOKEN",
    "CLIENT IP",
    "ACTOR",
    "DETAILS",
];

/// One event's table cells; client-chosen text escaped so it cannot forge lines.
fn row(e: &AuditEventView) -> [String; 8] {
    let opt = |v: &Option<String>| {
        v.as_deref()
            .map_or_else(|| "-".to_owned(), |s| Escaped(s).to_string())
    };
    let time = DateTime::parse_from_rfc3339(&e.time).map_or_else(
        |_| e.time.clone(),
        |t| t.to_utc().format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
    );
    let mut details = Vec::new();
    if let (Some(method), Some(path)) = (&e.method, &e.path) {
        details.push(format!("{} {}", Escaped(method), Escaped(path)));
    }
    // JSON text escapes control characters itself.
    if e.attributes.as_object().is_some_and(|a| !a.is_empty()) {
        details.push(e.attributes.to_string());
    }
    [
        time,
        e.kind.as_str().to_owned(),
        e.outcome.as_str().to_owned(),
        opt(&e.user),
        opt(&e.token_id),
        opt(&e.client_ip),
        opt(&e.actor),
        details.join(" "),
    ]
}

fn table(rows: &[[String; 8]]) -> String {
    let mut widths = HEADER.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; 8]| {
        for (i, cell) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(
                    ' ',
                    widths[i] - cell.chars().count() + 2,
                ));
            }
        }
        out.push('\n');
    };
    push(HEADER);
    for row in rows {
        push(row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc_3339_dates_or_durations_ago() {
        assert_eq!(
            parse_time("2024-06-01T08:00:00+02:00").unwrap(),
            "2024-06-01T06:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2024-06-01").unwrap(),
            "2024-06-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let ago = Utc::now() - parse_time("7d").unwrap();
        assert!((ago.num_seconds() - 7 * 86_400).abs() < 60, "{ago}");
        assert!(parse_time("last week").unwrap_err().contains("RFC 3339"));
    }
}
