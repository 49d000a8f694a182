//! `tokengate credential list` and `tokengate credential delete`: who has a stored Bitbucket
//! credential, and removing one, on the configured store. A credential itself is never read
//! or printed here.

use std::fmt::Write as _;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::token::{Failure, block_on, finish, open};
use crate::config::Config;
use crate::lifecycle::{self, CredentialList, CredentialView, LifecycleError, Origin};
use crate::telemetry::Escaped;

/// Runs `credential list`.
pub(super) fn list(config: &Config, json: bool) -> ExitCode {
    finish(block_on(async {
        let lifecycle = open(config).await?;
        let stored = lifecycle
            .store()
            .list_credentials()
            .await
            .map_err(LifecycleError::from)?;
        let credentials: Vec<CredentialView> = stored.iter().map(CredentialView::from).collect();
        if json {
            super::token::print_json(&CredentialList { credentials });
        } else {
            print!("{}", table(&credentials));
        }
        Ok(())
    }))
}

/// Runs `credential delete`.
pub(super) fn delete(config: &Config, user: &str) -> ExitCode {
    if let Err(e) = lifecycle::validate_user(user) {
        return finish(Err(LifecycleError::from(e).into()));
    }
    finish(block_on(async {
        let lifecycle = open(config).await?;
        lifecycle
            .delete_credential(user, &Origin::default(), Utc::now())
            .await
            .map_err(Failure::from)?;
        println!(
            "deleted the credential of {}; running gateways stop using it within a second",
            Escaped(user)
        );
        Ok(())
    }))
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn table(credentials: &[CredentialView]) -> String {
    if credentials.is_empty() {
        return "no stored credentials\n".to_owned();
    }
    let rows: Vec<[String; 4]> = credentials
        .iter()
        .map(|c| {
            [
                Escaped(&c.user).to_string(),
                if c.provisioned { "provisioned" } else { "set" }.to_owned(),
                time(c.updated_at),
                c.refused_at
                    .map_or_else(|| "-".to_owned(), |t| format!("refused {}", time(t))),
            ]
        })
        .collect();
    let header = ["USER", "SOURCE", "STORED", "BITBUCKET"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: [&str; 4]| {
        for (i, cell) in cells.iter().enumerate() {
            if i == 3 {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<w$}  ", w = widths[i]);
            }
        }
    };
    push(header);
    for row in &rows {
        push(row.each_ref().map(String::as_str));
    }
    out
}
