//! Who makes a change and from where, as its audit event records them, and where the events
//! go.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::audit::{AuditSink, Coverage};

/// Who makes the changes, as recorded in audit events' `actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    AdminApi,
    Cli,
    /// People through the self-service API and pages: each change names the acting user
    /// ([`Origin::acting`]).
    SelfService,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminApi => "admin-api",
            Self::Cli => "cli",
            Self::SelfService => "self-service",
        }
    }
}

/// How a person signed in to self-service, recorded as the attribute `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A tokengate token.
    Token,
    /// A Bitbucket password.
    Password,
    /// A Bitbucket personal or HTTP access token.
    BitbucketToken,
    /// Bitbucket's session cookie.
    Session,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Password => "password",
            Self::BitbucketToken => "bitbucket_token",
            Self::Session => "session",
        }
    }
}

/// The person who made a self-service change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    /// Their Bitbucket user name, the event's `actor`.
    pub user: String,
    pub via: Via,
}

/// The admin API request a change arrived in, recorded on its audit event. The CLI's
/// changes have none ([`Origin::default`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The address the call came from (the admin listener's peer).
    pub client_ip: Option<IpAddr>,
    /// The call's HTTP method.
    pub method: Option<Cow<'static, str>>,
    /// The call's path, without the query.
    pub path: Option<String>,
    /// The request id, also answered as `X-AREQUESTID`.
    pub request_id: Option<String>,
    /// Who made the change through self-service; `None` for the admin API and the CLI.
    pub acting: Option<Acting>,
}

/// Where lifecycle audit events go.
#[derive(Clone)]
pub enum AuditTo {
    /// The running gateway's batching writer.
    Sink(AuditSink),
    /// Straight into the store (the CLI has no writer), when the coverage records them, and
    /// into `audit.file` when one is configured.
    Store {
        coverage: Coverage,
        /// `audit.file`.
        file: Option<PathBuf>,
        /// The Bitbucket instance the audit file names (`upstream.url`).
        system: String,
    },
}
