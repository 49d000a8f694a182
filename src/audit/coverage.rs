//! Coverage levels, as Bitbucket names them for its audit log.

use std::str::FromStr;

use super::AuditKind;

/// How much is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Coverage {
    /// Nothing.
    Off,
    /// Token lifecycle (created, changed, revoked, expiry notices), credentials set and deleted,
    /// and admin actions.
    Base,
    /// As `base`; kept for parity with Bitbucket's levels.
    Advanced,
    /// As `advanced`, plus every authentication decision.
    Full,
}

impl Coverage {
    /// Whether events of `kind` are recorded at this level.
    pub fn records(self, kind: AuditKind) -> bool {
        if kind.is_lifecycle() {
            self >= Self::Base
        } else {
            self >= Self::Full
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Base => "base",
            Self::Advanced => "advanced",
            Self::Full => "full",
        }
    }
}

impl FromStr for Coverage {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "off" => Ok(Self::Off),
            "base" => Ok(Self::Base),
            "advanced" => Ok(Self::Advanced),
            "full" => Ok(Self::Full),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_record_exactly_their_events() {
        for kind in AuditKind::ALL {
            assert!(!Coverage::Off.records(kind));
            assert_eq!(Coverage::Base.records(kind), kind.is_lifecycle());
            assert_eq!(Coverage::Advanced.records(kind), kind.is_lifecycle());
            assert!(Coverage::Full.records(kind));
        }
    }
}
