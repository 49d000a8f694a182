//! How `token` commands print: `name: value` lines for one token, an aligned table for a
//! listing, and the admin API's JSON. User-controlled text is escaped, so a stored value cannot
//! forge lines on a terminal.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lifecycle::TokenView;
use crate::telemetry::Escaped;

pub(in crate::cli) fn print_json<T: Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

fn time(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(
        || none.to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// One token as `name: value` lines.
pub(super) fn fields(v: &TokenView) -> String {
    let ips = if v.allowed_ips.is_empty() {
        "any".to_owned()
    } else {
        v.allowed_ips
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let last_used = match (v.last_used_at, v.last_used_ip) {
        (Some(at), Some(ip)) => format!("{} from {ip}", time(Some(at), "")),
        (at, _) => time(at, "never"),
    };
    let mut out = String::new();
    let mut line = |name: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(out, "{:<14}{value}", format!("{name}:"));
    };
    line("id", &v.id);
    line("user", &Escaped(&v.user));
    line("description", &Escaped(&v.description));
    line("scope", &v.scope.as_str());
    line("state", &v.state.as_str());
    line("created", &time(Some(v.created_at), ""));
    line("expires", &time(v.expires_at, "never"));
    line("allowed IPs", &ips);
    line(
        "rate limit",
        &v.rate_limit.map_or_else(
            || "default (rate_limit.default)".to_owned(),
            |q| q.to_string(),
        ),
    );
    line("last used", &last_used);
    if v.revoked_at.is_some() {
        line("revoked", &time(v.revoked_at, ""));
    }
    out
}

/// Tokens as an aligned table.
pub(super) fn table(tokens: &[TokenView]) -> String {
    if tokens.is_empty() {
        return "no tokens\n".to_owned();
    }
    let header = [
        "ID",
        "USER",
        "STATE",
        "SCOPE",
        "CREATED",
        "EXPIRES",
        "LAST USED",
        "DESCRIPTION",
    ];
    let rows: Vec<[String; 8]> = tokens
        .iter()
        .map(|v| {
            [
                v.id.clone(),
                Escaped(&v.user).to_string(),
                v.state.as_str().to_owned(),
                v.scope.as_str().to_owned(),
                time(Some(v.created_at), ""),
                time(v.expires_at, "never"),
                time(v.last_used_at, "never"),
                Escaped(&v.description).to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push('\n');
    };
    push(&header);
    for row in &rows {
        push(&row.each_ref().map(String::as_str));
    }
    out
}
