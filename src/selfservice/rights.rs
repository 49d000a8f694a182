//! Rights: who may use tokens, create their own, and manage everyone's. A rule names a user,
//! a Bitbucket group (`group:NAME`) or everyone (`*`); evaluating one is a pure function of
//! the user and their groups.

use std::collections::HashSet;
use std::fmt;

/// One entry of a rights list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// `*`.
    Anyone,
    /// A user name, compared as Bitbucket compares them: without regard to case.
    User(String),
    /// `group:NAME`, a Bitbucket group, compared without regard to case.
    Group(String),
}

impl Rule {
    /// Parses `*`, `group:NAME` or a user name.
    pub fn parse(entry: &str) -> Result<Self, &'static str> {
        let entry = entry.trim();
        if entry == "*" {
            return Ok(Self::Anyone);
        }
        let (rule, name): (fn(String) -> Self, &str) = match entry.strip_prefix("group:") {
            Some(group) => (Self::Group, group.trim()),
            None => (Self::User, entry),
        };
        if name.is_empty() {
            return Err("expected \"*\", a user name or group:NAME");
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(rule(name.to_lowercase()))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anyone => f.write_str("*"),
            Self::User(user) => f.write_str(user),
            Self::Group(group) => write!(f, "group:{group}"),
        }
    }
}

/// A rights list; empty allows nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Self {
        Self(rules)
    }

    /// True when the list allows everyone, so no user or group needs to be looked at.
    pub fn allows_anyone(&self) -> bool {
        self.0.contains(&Rule::Anyone)
    }

    /// Whether a rule names a group.
    pub fn names_groups(&self) -> bool {
        self.first_group().is_some()
    }

    /// The first group a rule names.
    pub fn first_group(&self) -> Option<&str> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Group(group) => Some(group.as_str()),
            _ => None,
        })
    }

    /// Whether the list allows `user` without looking at groups: `Some(true)` or
    /// `Some(false)` when that settles it, `None` when only the user's groups can tell.
    pub fn allows_by_name(&self, user: &str) -> Option<bool> {
        let user = user.to_lowercase();
        let named = self.0.iter().any(|rule| match rule {
            Rule::Anyone => true,
            Rule::User(name) => *name == user,
            Rule::Group(_) => false,
        });
        if named {
            Some(true)
        } else if self.names_groups() {
            None
        } else {
            Some(false)
        }
    }

    /// Whether the list allows `user`, a member of `groups` (lower case).
    pub fn allows(&self, user: &str, groups: &HashSet<String>) -> bool {
        self.allows_by_name(user).unwrap_or_else(|| {
            self.0.iter().any(|rule| match rule {
                Rule::Group(group) => groups.contains(group),
                Rule::Anyone | Rule::User(_) => false,
            })
        })
    }
}

/// What one user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Granted {
    /// Their tokens authenticate.
    pub use_tokens: bool,
    /// They may create tokens for themselves.
    pub create_own: bool,
    /// They may see, create for and revoke anyone's tokens.
    pub manage_all: bool,
}

/// The three rights lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights {
    pub use_tokens: Rules,
    pub create_own: Rules,
    pub manage_all: Rules,
}

impl Rights {
    /// Whether any list names a group.
    pub fn names_groups(&self) -> bool {
        self.use_tokens.names_groups()
            || self.create_own.names_groups()
            || self.manage_all.names_groups()
    }

    /// What `user`, a member of `groups`, may do. `manage_all` implies `create_own`; neither
    /// is granted to a user whose tokens may not be used.
    pub fn granted(&self, user: &str, groups: &HashSet<String>) -> Granted {
        let use_tokens = self.use_tokens.allows(user, groups);
        let manage_all = use_tokens && self.manage_all.allows(user, groups);
        Granted {
            use_tokens,
            create_own: use_tokens && (manage_all || self.create_own.allows(user, groups)),
            manage_all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(entries: &[&str]) -> Rules {
        Rules::new(entries.iter().map(|e| Rule::parse(e).unwrap()).collect())
    }

    fn groups(names: &[&str]) -> HashSet<String> {
        names.iter().map(|g| g.to_lowercase()).collect()
    }

    #[test]
    fn parses_users_groups_and_everyone() {
        assert_eq!(Rule::parse("*"), Ok(Rule::Anyone));
        assert_eq!(Rule::parse("Alice"), Ok(Rule::User("alice".into())));
        assert_eq!(
            Rule::parse("group:Bitbucket-Admins"),
            Ok(Rule::Group("bitbucket-admins".into()))
        );
        assert!(Rule::parse("group:").is_err());
        assert!(Rule::parse("").is_err());
        assert!(Rule::parse("a\nb").is_err());
        assert_eq!(Rule::parse("group:ops").unwrap().to_string(), "group:ops");
    }

    #[test]
    fn names_settle_what_they_can_and_groups_the_rest() {
        let list = rules(&["alice", "group:ops"]);
        assert_eq!(list.allows_by_name("ALICE"), Some(true));
        assert_eq!(
            list.allows_by_name("bob"),
            None,
            "only bob's groups can tell"
        );
        assert!(list.allows("bob", &groups(&["Ops"])));
        assert!(!list.allows("bob", &groups(&["dev"])));
        assert_eq!(rules(&["alice"]).allows_by_name("bob"), Some(false));
        assert_eq!(
            rules(&[]).allows_by_name("bob"),
            Some(false),
            "empty allows nobody"
        );
        assert!(rules(&["*"]).allows_anyone());
    }

    #[test]
    fn manage_all_implies_create_own_but_never_without_use_tokens() {
        let rights = Rights {
            use_tokens: rules(&["*"]),
            create_own: rules(&["group:dev"]),
            manage_all: rules(&["group:admins"]),
        };
        let admin = rights.granted("ann", &groups(&["admins"]));
        assert_eq!(
            admin,
            Granted {
                use_tokens: true,
                create_own: true,
                manage_all: true
            }
        );
        let outsider = rights.granted("olaf", &groups(&[]));
        assert!(outsider.use_tokens && !outsider.create_own && !outsider.manage_all);

        let locked_out = Rights {
            use_tokens: rules(&["group:dev"]),
            ..rights
        };
        let admin = locked_out.granted("ann", &groups(&["admins"]));
        assert_eq!(
            admin,
            Granted {
                use_tokens: false,
                create_own: false,
                manage_all: false
            },
            "the rules apply to managers too"
        );
    }
}
