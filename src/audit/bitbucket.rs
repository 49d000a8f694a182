//! The optional `audit.file`: every recorded event appended as one JSON line in the shape of
//! Bitbucket's own audit log file, so the tools that read that file read this one too.
//!
//! Attributes become `extraAttributes`, except changed fields (`{"field": {"old", "new"}}`,
//! see [`AuditEvent::attributes`]), which become `changedValues`.

use std::io;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use tokio::fs::{self, OpenOptions};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::{AuditEvent, AuditKind};

/// The audit file, written through a buffer that is flushed after every batch.
pub(super) struct AuditFile {
    out: BufWriter<fs::File>,
}

impl AuditFile {
    /// Opens `path` for appending, creating it and its directory. A new file is readable by
    /// its owner only (it holds the audit trail); an existing one keeps its mode.
    pub(super) async fn open(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).await?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .await?;
        Ok(Self {
            out: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    /// Appends one line per event and flushes.
    pub(super) async fn append(&mut self, events: &[AuditEvent], system: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(1024);
        for event in events {
            line.clear();
            serde_json::to_writer(&mut line, &Entry::of(event, system))?;
            line.push(b'\n');
            self.out.write_all(&line).await?;
        }
        self.out.flush().await
    }
}

/// Appends `events` to the audit file at `path` for a process without a writer (the CLI).
/// Each line goes out in one `write` in append mode, so on a local filesystem lines from a
/// running gateway's writer and from here never interleave.
pub async fn append_to_audit_file(
    path: &Path,
    events: &[AuditEvent],
    system: &str,
) -> io::Result<()> {
    AuditFile::open(path).await?.append(events, system).await
}

/// One line of Bitbucket's audit log file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Entry<'a> {
    affected_objects: Vec<AffectedObject<'a>>,
    author: Author<'a>,
    audit_type: AuditType,
    changed_values: Vec<ChangedValue>,
    extra_attributes: Vec<ExtraAttribute>,
    method: &'static str,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    system: &'a str,
    timestamp: Timestamp,
    version: &'static str,
}

#[derive(Debug, Serialize)]
struct AffectedObject<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
struct Author<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditType {
    action: &'static str,
    action_i18n_key: String,
    area: &'static str,
    category: &'static str,
    category_i18n_key: &'static str,
    level: &'static str,
}

#[derive(Debug, Serialize)]
struct ChangedValue {
    from: String,
    to: String,
    key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtraAttribute {
    name: String,
    value: String,
    name_i18n_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Timestamp {
    epoch_second: i64,
    nano: u32,
}

/// The human name of an event type, as Bitbucket's `auditType.action`.
fn action(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::TokenCreated => "API token created",
        AuditKind::TokenChanged => "API token changed",
        AuditKind::TokenRevoked => "API token revoked",
        AuditKind::CredentialSet => "Bitbucket credential set",
        AuditKind::AuthSucceeded => "API token authentication succeeded",
        AuditKind::AuthFailed => "API token authentication failed",
        AuditKind::ExpiredTokenUsed => "Expired API token used",
        AuditKind::ScopeDenied => "API token scope denied",
        AuditKind::IpDenied => "API token IP address denied",
        AuditKind::RateLimited => "API token rate limited",
        AuditKind::Fallback => "Authentication passed to Bitbucket",
        AuditKind::CredentialDeleted => "Bitbucket credential deleted",
        AuditKind::TokenExpiryNotified => "API token expiry notice sent",
    }
}

/// A JSON value as attribute text: strings as they are, anything else as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `(old, new)` when `value` is a changed field, `{"old": …, "new": …}`.
fn change(value: &Value) -> Option<(&Value, &Value)> {
    let object = value.as_object().filter(|o| o.len() == 2)?;
    Some((object.get("old")?, object.get("new")?))
}

fn attribute(name: &str, value: String) -> ExtraAttribute {
    ExtraAttribute {
        name: name.to_owned(),
        value,
        name_i18n_key: format!("tokengate.audit.attribute.{name}"),
    }
}

impl<'a> Entry<'a> {
    /// The line for `event`; `system` names the Bitbucket instance the gateway fronts.
    pub(super) fn of(event: &'a AuditEvent, system: &'a str) -> Self {
        let lifecycle = event.kind.is_lifecycle();
        let mut affected_objects = Vec::new();
        if let (true, Some(user)) = (lifecycle, &event.user) {
            affected_objects.push(AffectedObject {
                id: user,
                name: user,
                kind: "USER",
            });
        }
        if let Some(id) = &event.token_id {
            affected_objects.push(AffectedObject {
                id,
                name: id,
                kind: "API_TOKEN",
            });
        }
        let author = if lifecycle {
            Author {
                name: event.actor.as_deref().unwrap_or("tokengate"),
                kind: "system",
            }
        } else {
            Author {
                name: event.user.as_deref().unwrap_or("anonymous"),
                kind: "user",
            }
        };
        let (area, category, category_i18n_key, level) = if lifecycle {
            (
                "USER_MANAGEMENT",
                "API tokens",
                "tokengate.audit.category.apitokens",
                "BASE",
            )
        } else {
            (
                "SECURITY",
                "Authentication",
                "tokengate.audit.category.authentication",
                "FULL",
            )
        };
        let mut changed_values = Vec::new();
        let mut extra_attributes = vec![attribute("outcome", event.outcome.as_str().to_owned())];
        for (name, value) in [
            ("request_method", event.method.as_deref()),
            ("request_path", event.path.as_deref()),
            ("request_id", event.request_id.as_deref()),
        ] {
            if let Some(value) = value {
                extra_attributes.push(attribute(name, value.to_owned()));
            }
        }
        if let Value::Object(attributes) = &*event.attributes.to_value() {
            for (name, value) in attributes {
                match change(value) {
                    Some((from, to)) => changed_values.push(ChangedValue {
                        from: text(from),
                        to: text(to),
                        key: name.clone(),
                    }),
                    None => extra_attributes.push(attribute(name, text(value))),
                }
            }
        }
        Self {
            affected_objects,
            author,
            audit_type: AuditType {
                action: action(event.kind),
                action_i18n_key: format!("tokengate.audit.action.{}", event.kind.as_str()),
                area,
                category,
                category_i18n_key,
                level,
            },
            changed_values,
            extra_attributes,
            method: if event.actor.as_deref() == Some("cli") {
                "System"
            } else {
                "Rest API"
            },
            node: &event.node_id,
            source: event.client_ip.map(|ip| ip.to_string()),
            system,
            timestamp: Timestamp {
                epoch_second: event.time.timestamp(),
                nano: event.time.timestamp_subsec_nanos(),
            },
            version: "1.0",
        }
    }
}

#[cfg(test)]
mod tests;
