//! The spill file: batches the store refused wait here as NDJSON (one [`AuditEvent`] a line)
//! and are replayed into the store once it answers again.
//!
//! Crash safety. A replay pass first renames the file to `<spill>.replaying`, so new spills
//! start a fresh file, and after each batch is committed it records how many bytes of that file
//! are done in `<spill>.replaying.offset` (written aside and renamed, so never torn). A pass
//! that starts (after a crash, a restart or a failed insert) cannot know whether its first batch
//! was committed just before the interruption: it looks that batch's last event up in the store
//! first and skips the batch if it is there (an insert is one transaction, so a batch is stored
//! whole or not at all). The `.replaying` file is removed before its offset file, and a fresh
//! pass deletes a stale offset before renaming, so an offset never applies to another file.
//! Nothing is lost or stored twice, barring a second, identical event in the same millisecond.
//! The file belongs to one process: gateways on one host need a `spill_file` each.

use std::io;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use super::{AuditEvent, AuditQuery};
use crate::store::{StoreError, TokenStore};

/// Most events replayed in one insert.
const REPLAY_BATCH: usize = 500;

/// The spill file and its replay state.
pub(super) struct Spill {
    path: PathBuf,
    replaying: PathBuf,
    offset: PathBuf,
    /// Whether either file may hold events.
    pending: bool,
    /// The open pass over `replaying`, if one is under way.
    pass: Option<Pass>,
}

struct Pass {
    reader: BufReader<File>,
    /// Bytes of `replaying` that are stored.
    done: u64,
    /// The next batch is the first of this pass: look it up before inserting it.
    verify: bool,
}

/// What one replay step did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Replayed {
    /// Events inserted into the store.
    pub(super) stored: u64,
    /// Events found already stored (the batch an interruption left uncertain).
    pub(super) skipped: u64,
    /// Lines that were not events (a write cut short by a crash); they are lost.
    pub(super) unreadable: u64,
}

/// Why a replay step stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("audit spill file: {0}")]
    Io(#[from] io::Error),
}

impl Spill {
    pub(super) fn new(path: PathBuf) -> Self {
        let replaying = with_suffix(&path, ".replaying");
        let offset = with_suffix(&path, ".replaying.offset");
        let pending = path.exists() || replaying.exists();
        Self {
            path,
            replaying,
            offset,
            pending,
            pass: None,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether events wait in the spill file.
    pub(super) fn pending(&self) -> bool {
        self.pending
    }

    /// Appends `events` and syncs them to disk.
    pub(super) async fn append(&mut self, events: &[AuditEvent]) -> io::Result<()> {
        let mut lines = Vec::with_capacity(events.len() * 256);
        for event in events {
            serde_json::to_writer(&mut lines, event)?;
            lines.push(b'\n');
        }
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).await?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .await?;
        if !ends_with_newline(&mut file).await? {
            // A crash cut the last line short: keep it from swallowing the first new one.
            lines.insert(0, b'\n');
        }
        file.write_all(&lines).await?;
        file.sync_data().await?;
        self.pending = true;
        Ok(())
    }

    /// Replays the next batch into `store`. Returns `None` when nothing is left (both files are
    /// gone). After an error the pass is closed; the next call starts a new one.
    pub(super) async fn replay_next(
        &mut self,
        store: &dyn TokenStore,
    ) -> Result<Option<Replayed>, ReplayError> {
        let result = self.step(store).await;
        if result.is_err() {
            self.pass = None;
        }
        result
    }

    async fn step(&mut self, store: &dyn TokenStore) -> Result<Option<Replayed>, ReplayError> {
        if self.pass.is_none() && !self.open_pass().await? {
            self.pending = false;
            return Ok(None);
        }
        let pass = self.pass.as_mut().expect("opened above");
        let (events, consumed, unreadable) = read_batch(&mut pass.reader).await?;
        if consumed == 0 {
            // The whole file is stored: remove it first, then its offset (see the module doc).
            self.pass = None;
            remove_if_present(&self.replaying).await?;
            remove_if_present(&self.offset).await?;
            return Ok(Some(Replayed::default()));
        }
        let mut done = Replayed {
            unreadable,
            ..Replayed::default()
        };
        let verify = std::mem::replace(&mut pass.verify, false);
        if let Some(last) = events.last() {
            if verify && is_stored(store, last).await? {
                done.skipped = events.len() as u64;
            } else {
                store.insert_audit(&events).await?;
                done.stored = events.len() as u64;
            }
        }
        pass.done += consumed;
        write_atomically(&self.offset, pass.done.to_string().as_bytes()).await?;
        Ok(Some(done))
    }

    /// Opens a pass over `.replaying`, renaming the spill file to it first when there is none.
    /// False when there is nothing to replay.
    async fn open_pass(&mut self) -> io::Result<bool> {
        if !fs::try_exists(&self.replaying).await? {
            if !fs::try_exists(&self.path).await? {
                return Ok(false);
            }
            remove_if_present(&self.offset).await?;
            fs::rename(&self.path, &self.replaying).await?;
            sync_dir(&self.replaying).await;
        }
        let done = match fs::read_to_string(&self.offset).await {
            Ok(text) => text.trim().parse::<u64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.offset.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut file = File::open(&self.replaying).await?;
        file.seek(io::SeekFrom::Start(done)).await?;
        self.pass = Some(Pass {
            reader: BufReader::new(file),
            done,
            verify: true,
        });
        Ok(true)
    }
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Reads up to [`REPLAY_BATCH`] events: the events, the bytes consumed, the unreadable lines.
async fn read_batch(reader: &mut BufReader<File>) -> io::Result<(Vec<AuditEvent>, u64, u64)> {
    let mut events = Vec::new();
    let (mut consumed, mut unreadable) = (0u64, 0u64);
    let mut line = Vec::new();
    while events.len() < REPLAY_BATCH {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 {
            break;
        }
        consumed += n as u64;
        if line.trim_ascii().is_empty() {
            continue;
        }
        // A line that is not an event is a write torn by a crash.
        match serde_json::from_slice(&line) {
            Ok(event) => events.push(event),
            Err(_) => unreadable += 1,
        }
    }
    Ok((events, consumed, unreadable))
}

/// Whether `event` (as the store keeps it, to the millisecond) is in the store.
async fn is_stored(store: &dyn TokenStore, event: &AuditEvent) -> Result<bool, StoreError> {
    let at = floor_ms(event.time);
    let expected = AuditEvent {
        time: at,
        ..event.clone()
    };
    let mut query = AuditQuery {
        user: event.user.as_deref().map(str::to_owned),
        kind: Some(event.kind),
        token_id: event.token_id.as_deref().map(str::to_owned),
        since: Some(at),
        until: Some(at + TimeDelta::milliseconds(1)),
        limit: 1_000,
        after: None,
    };
    loop {
        let page = store.query_audit(&query).await?;
        if page.iter().any(|stored| stored.event == expected) {
            return Ok(true);
        }
        match page.last() {
            Some(last) if page.len() == query.limit as usize => {
                query.after = Some((last.event.time, last.id))
            }
            _ => return Ok(false),
        }
    }
}

fn floor_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

async fn ends_with_newline(file: &mut File) -> io::Result<bool> {
    let len = file.metadata().await?.len();
    if len == 0 {
        return Ok(true);
    }
    file.seek(io::SeekFrom::Start(len - 1)).await?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last).await?;
    Ok(last[0] == b'\n')
}

async fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let aside = with_suffix(path, ".tmp");
    let mut file = File::create(&aside).await?;
    file.write_all(contents).await?;
    file.sync_data().await?;
    fs::rename(&aside, path).await
}

async fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes a rename in `path`'s directory durable (best effort: not every platform allows it).
async fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir).await
    {
        let _ = dir.sync_all().await;
    }
}

#[cfg(test)]
mod tests;
