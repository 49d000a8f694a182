//! Which config file is read: the one `--config` names, else the one `TOKENGATE_CONFIG` names,
//! else the first of [`SEARCH_PATHS`] that exists; with none, built-in defaults and the
//! environment alone, which every command says, so a missing file is never a surprise.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a config file is looked for when neither `--config` nor [`CONFIG_VAR`] names one, in
/// this order; a relative path is taken from the working directory.
pub const SEARCH_PATHS: [&str; 2] = ["config/tokengate.toml", "/etc/tokengate/tokengate.toml"];

/// The environment variable that names the config file when `--config` is not given.
pub const CONFIG_VAR: &str = "TOKENGATE_CONFIG";

/// The config file a command reads, and what chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigFile {
    /// Named by `--config`; it must exist.
    Flag(PathBuf),
    /// Named by [`CONFIG_VAR`]; it must exist.
    Env(PathBuf),
    /// The first of [`SEARCH_PATHS`] that exists.
    Found(PathBuf),
    /// None given and none found: built-in defaults and `TOKENGATE_*` variables.
    None,
}

impl ConfigFile {
    /// The file `flag` (`--config`) or `env` ([`CONFIG_VAR`]) names, else the first of
    /// `search` that exists.
    pub fn locate(flag: Option<&Path>, env: Option<&str>, search: &[&str]) -> Self {
        if let Some(path) = flag {
            return Self::Flag(path.to_path_buf());
        }
        if let Some(path) = env.filter(|v| !v.is_empty()) {
            return Self::Env(PathBuf::from(path));
        }
        search
            .iter()
            .map(PathBuf::from)
            .find(|path| path.exists())
            .map_or(Self::None, Self::Found)
    }

    /// The file to read, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Flag(path) | Self::Env(path) | Self::Found(path) => Some(path),
            Self::None => None,
        }
    }
}

/// `config file /etc/tokengate/tokengate.toml`, or what was looked for when none was found.
impl fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |path: &Path| {
            std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string()
        };
        match self {
            Self::Flag(path) => write!(f, "config file {} (--config)", shown(path)),
            Self::Env(path) => write!(f, "config file {} ({CONFIG_VAR})", shown(path)),
            Self::Found(path) => write!(f, "config file {}", shown(path)),
            Self::None => write!(
                f,
                "no config file (none given with --config or {CONFIG_VAR}, none at {}): the \
                 built-in defaults and TOKENGATE_* variables apply",
                SEARCH_PATHS.join(" or ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_then_the_variable_then_the_first_file_found() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first.toml");
        let second = dir.path().join("second.toml");
        std::fs::write(&second, "").unwrap();
        let search = [first.to_str().unwrap(), second.to_str().unwrap()];
        let flag = Path::new("/flag.toml");
        assert_eq!(
            ConfigFile::locate(Some(flag), Some("/env.toml"), &search),
            ConfigFile::Flag(flag.into())
        );
        assert_eq!(
            ConfigFile::locate(None, Some("/env.toml"), &search),
            ConfigFile::Env("/env.toml".into())
        );
        // An empty variable names nothing.
        assert_eq!(
            ConfigFile::locate(None, Some(""), &search),
            ConfigFile::Found(second.clone())
        );
        std::fs::write(&first, "").unwrap();
        assert_eq!(
            ConfigFile::locate(None, None, &search),
            ConfigFile::Found(first)
        );
        let none = ConfigFile::locate(None, None, &["/nonexistent/a.toml"]);
        assert_eq!(none, ConfigFile::None);
        assert!(none.to_string().contains("built-in defaults"), "{none}");
        assert!(
            ConfigFile::Env("/env.toml".into())
                .to_string()
                .contains("TOKENGATE_CONFIG")
        );
    }
}
