//! Whether a database holds the schema this release's migrations make, read without changing
//! anything: the commands that only use a store (`token`, `credential`) check it and leave
//! migrating to `tokengate migrate` and `serve`.

use std::collections::BTreeSet;
use std::fmt;

use sqlx::migrate::Migrator;

/// How a database's applied migrations compare with this release's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    /// Every migration of this release is applied, and no other.
    Current,
    /// These migrations of this release are not applied (all of them on a new database).
    Behind { pending: Vec<i64> },
    /// A newer release applied these migrations, which this one does not know.
    Ahead { unknown: Vec<i64> },
    /// This migration failed part-way and must be looked at by hand.
    Dirty { version: i64 },
}

impl Schema {
    /// Compares the versions a database applied (`applied`, each with whether it succeeded)
    /// with `migrator`'s.
    pub(super) fn compare(migrator: &Migrator, applied: &[(i64, bool)]) -> Self {
        if let Some((version, _)) = applied.iter().find(|(_, success)| !success) {
            return Self::Dirty { version: *version };
        }
        let known: BTreeSet<i64> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| m.version)
            .collect();
        let done: BTreeSet<i64> = applied.iter().map(|(version, _)| *version).collect();
        let unknown: Vec<i64> = done.difference(&known).copied().collect();
        if !unknown.is_empty() {
            return Self::Ahead { unknown };
        }
        let pending: Vec<i64> = known.difference(&done).copied().collect();
        if pending.is_empty() {
            Self::Current
        } else {
            Self::Behind { pending }
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |versions: &[i64]| {
            versions
                .iter()
                .map(|v| format!("{v:04}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Self::Current => f.write_str("the database schema is current"),
            Self::Behind { pending } => write!(
                f,
                "the database schema is behind this release (migrations {} are not applied): \
                 run `tokengate migrate`",
                list(pending)
            ),
            Self::Ahead { unknown } => write!(
                f,
                "the database was migrated by a newer release of tokengate (migrations {} are \
                 unknown to this one): upgrade this tokengate",
                list(unknown)
            ),
            Self::Dirty { version } => write!(
                f,
                "migration {version:04} of the database failed part-way: look at it and run \
                 `tokengate migrate` again"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

    #[test]
    fn compares_applied_migrations_with_the_release() {
        let all: Vec<(i64, bool)> = MIGRATOR.iter().map(|m| (m.version, true)).collect();
        assert_eq!(Schema::compare(&MIGRATOR, &all), Schema::Current);
        let Schema::Behind { pending } = Schema::compare(&MIGRATOR, &all[..1]) else {
            panic!("one migration applied is behind");
        };
        assert_eq!(pending.len(), all.len() - 1);
        assert!(matches!(
            Schema::compare(&MIGRATOR, &[]),
            Schema::Behind { .. }
        ));
        let mut newer = all.clone();
        newer.push((9999, true));
        assert_eq!(
            Schema::compare(&MIGRATOR, &newer),
            Schema::Ahead {
                unknown: vec![9999]
            }
        );
        let mut failed = all;
        failed[1].1 = false;
        assert_eq!(
            Schema::compare(&MIGRATOR, &failed),
            Schema::Dirty {
                version: failed[1].0
            }
        );
        assert!(
            Schema::compare(&MIGRATOR, &[])
                .to_string()
                .contains("tokengate migrate")
        );
    }
}
