//! A consistent copy of an SQLite store while gateways keep writing to it: `VACUUM INTO` reads
//! one snapshot (WAL readers never block writers, nor are blocked by them) and writes it to a
//! new file, created beforehand with mode 0600, synced, then checked.

use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

use crate::store::StoreError;

/// Why a backup was not made. A file that was started is removed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: a backup is written to a new file")]
    Exists(PathBuf),
    #[error("cannot create {path}: {cause}")]
    Create { path: PathBuf, cause: io::Error },
    #[error("there is no SQLite database at {0}")]
    NoDatabase(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the copy failed SQLite's integrity check: {0}")]
    Integrity(String),
}

/// What a finished backup holds, read back from the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub tokens: u64,
    pub credentials: u64,
    pub audit_events: u64,
    /// The copy's size in bytes.
    pub bytes: u64,
}

/// Copies the database of `url` (`sqlite://…`) to `path`, a file that must not exist yet.
pub async fn backup(url: &str, path: &Path) -> Result<BackupSummary, BackupError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(StoreError::from)?
        .busy_timeout(Duration::from_secs(5));
    let source = options.get_filename().to_path_buf();
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source));
    }
    let mut conn = options.connect().await.map_err(StoreError::from)?;
    create_private(path)?;
    let result = copy_and_check(&mut conn, path).await;
    conn.close().await.ok();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn create_private(path: &Path) -> Result<(), BackupError> {
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    match create.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(BackupError::Exists(path.to_path_buf()))
        }
        Err(cause) => Err(BackupError::Create {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

async fn copy_and_check(
    conn: &mut SqliteConnection,
    path: &Path,
) -> Result<BackupSummary, BackupError> {
    let target = path.to_str().ok_or_else(|| BackupError::Create {
        path: path.to_path_buf(),
        cause: io::Error::other("the path is not UTF-8"),
    })?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    // SQLite does not sync the file VACUUM INTO writes.
    let io = |cause| BackupError::Create {
        path: path.to_path_buf(),
        cause,
    };
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    let mut copy = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await
        .map_err(StoreError::from)?;
    let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut copy)
        .await
        .map_err(StoreError::from)?;
    if check != ["ok"] {
        return Err(BackupError::Integrity(check.join("; ")));
    }
    let mut count = async |sql: &'static str| -> Result<u64, BackupError> {
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&mut copy)
            .await
            .map_err(StoreError::from)?;
        Ok(u64::try_from(n).unwrap_or_default())
    };
    let tokens = count("SELECT COUNT(*) FROM tokens").await?;
    let credentials = count("SELECT COUNT(*) FROM credentials").await?;
    let audit_events = count("SELECT COALESCE(SUM(events), 0) FROM audit_segments").await?;
    copy.close().await.ok();
    Ok(BackupSummary {
        tokens,
        credentials,
        audit_events,
        bytes,
    })
}
