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
//! The lookup compares what the store holds: times to the millisecond, U+0000 in text as
//! U+FFFD ([`stored_text`]). A step may be cancelled at any await (a shutdown deadline): the
//! pass is then closed, and the next one resumes from the offset and looks its first batch up.
//! A batch the store keeps refusing can be set aside into `<spill>.failed-<time>`
//! ([`Spill::set_aside`]), so the batches behind it are replayed.
//! The file belongs to one process: gateways on one host need a `spill_file` each. The files
//! are created readable by their owner only: they hold the audit trail.

use std::borrow::Cow;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use compact_str::CompactString;
use tokio::fs::{self, File, OpenOptions};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

use super::{AuditEvent, AuditQuery, stored_json, stored_text};
use crate::store::{AuditStore, StoreError};

/// Most events replayed in one insert.
const REPLAY_BATCH: usize = 500;
/// The mode of every file created here: the audit trail is for its owner's eyes only.
const OWNER_ONLY: u32 = 0o600;

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

/// A batch taken out of the replay by [`Spill::set_aside`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SetAside {
    /// The file that now holds its lines.
    pub(super) file: PathBuf,
    /// The events in it.
    pub(super) events: u64,
}

/// Why a replay step stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A store call did not answer within the step's limit.
    #[error("the store did not answer within {0:?}")]
    TimedOut(Duration),
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
            .mode(OWNER_ONLY)
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

    /// Replays the next batch into `store`, each store call given at most `limit`. Returns
    /// `None` when nothing is left (both files are gone). After an error, or when the step is
    /// cancelled, the pass is closed; the next call starts a new one.
    pub(super) async fn replay_next(
        &mut self,
        store: &dyn AuditStore,
        limit: Duration,
    ) -> Result<Option<Replayed>, ReplayError> {
        if self.pass.is_none() && !self.open_pass().await? {
            self.pending = false;
            return Ok(None);
        }
        // Taken out while the step runs: put back only once it has completed.
        let mut pass = self.pass.take().expect("opened above");
        let (events, consumed, unreadable) = read_batch(&mut pass.reader).await?;
        if consumed == 0 {
            // The whole file is stored: remove it first, then its offset (see the module doc).
            remove_if_present(&self.replaying).await?;
            remove_if_present(&self.offset).await?;
            return Ok(Some(Replayed::default()));
        }
        let mut done = Replayed {
            unreadable,
            ..Replayed::default()
        };
        if let Some(last) = events.last() {
            if pass.verify && within(limit, is_stored(store, last)).await? {
                done.skipped = events.len() as u64;
            } else {
                within(limit, store.insert_audit(&events)).await?;
                done.stored = events.len() as u64;
            }
        }
        pass.verify = false;
        pass.done += consumed;
        write_atomically(&self.offset, pass.done.to_string().as_bytes()).await?;
        self.pass = Some(pass);
        Ok(Some(done))
    }

    /// Moves the batch that the next replay step would store into `<spill>.failed-<now>`
    /// (a new file, readable by its owner only), so the replay goes on after it. `None` when
    /// no batch is left. Should the process die before the offset passes the batch, the next
    /// run replays the batch again (and may set it aside once more).
    pub(super) async fn set_aside(&mut self, now: DateTime<Utc>) -> io::Result<Option<SetAside>> {
        if self.pass.is_none() && !self.open_pass().await? {
            self.pending = false;
            return Ok(None);
        }
        let mut pass = self.pass.take().expect("opened above");
        let start = pass.done;
        let (events, consumed, _) = read_batch(&mut pass.reader).await?;
        if consumed == 0 {
            return Ok(None);
        }
        let mut lines = vec![0; usize::try_from(consumed).expect("a batch fits in memory")];
        let mut file = File::open(&self.replaying).await?;
        file.seek(io::SeekFrom::Start(start)).await?;
        file.read_exact(&mut lines).await?;
        let stamp = now.format("%Y%m%dT%H%M%S%.3fZ");
        let (path, mut out) =
            create_new(&with_suffix(&self.path, &format!(".failed-{stamp}"))).await?;
        out.write_all(&lines).await?;
        out.sync_data().await?;
        sync_dir(&path).await;
        pass.done += consumed;
        write_atomically(&self.offset, pass.done.to_string().as_bytes()).await?;
        // The next batch follows one that was not stored: there is nothing to look up.
        pass.verify = false;
        self.pass = Some(pass);
        Ok(Some(SetAside {
            file: path,
            events: events.len() as u64,
        }))
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

/// Runs a store call for at most `limit`.
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, ReplayError> {
    match timeout(limit, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ReplayError::TimedOut(limit)),
    }
}

/// Whether `event` is in the store: looked up, and compared, as the store keeps it.
async fn is_stored(store: &dyn AuditStore, event: &AuditEvent) -> Result<bool, StoreError> {
    let expected = stored_form(event);
    let at = expected.time;
    let mut query = AuditQuery {
        user: expected.user.as_deref().map(str::to_owned),
        kind: Some(expected.kind),
        token_id: expected.token_id.as_deref().map(str::to_owned),
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

/// `event` as the store keeps it and reads it back: its time to the millisecond, U+0000 in
/// every text (attributes too) replaced as the store replaces it ([`stored_text`]).
fn stored_form(event: &AuditEvent) -> AuditEvent {
    fn compact(text: Option<&CompactString>) -> Option<CompactString> {
        text.map(|t| stored_text(t).as_ref().into())
    }
    fn fixed(text: Cow<'static, str>) -> Cow<'static, str> {
        match stored_text(&text) {
            Cow::Owned(replaced) => Cow::Owned(replaced),
            Cow::Borrowed(_) => text,
        }
    }
    AuditEvent {
        time: floor_ms(event.time),
        kind: event.kind,
        outcome: event.outcome,
        user: compact(event.user.as_ref()),
        token_id: compact(event.token_id.as_ref()),
        client_ip: event.client_ip,
        method: event.method.clone().map(fixed),
        path: compact(event.path.as_ref()),
        request_id: compact(event.request_id.as_ref()),
        node_id: fixed(event.node_id.clone()),
        actor: event.actor.as_deref().map(|a| stored_text(a).into_owned()),
        attributes: stored_json(&event.attributes.to_value())
            .into_owned()
            .into(),
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
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OWNER_ONLY)
        .open(&aside)
        .await?;
    file.write_all(contents).await?;
    file.sync_data().await?;
    fs::rename(&aside, path).await
}

/// Creates `path`, or `path-2`, `path-3`… when it exists, readable by its owner only.
async fn create_new(path: &Path) -> io::Result<(PathBuf, File)> {
    let mut candidate = path.to_owned();
    let mut n = 1;
    loop {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(OWNER_ONLY)
            .open(&candidate)
            .await
        {
            Ok(file) => return Ok((candidate, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                n += 1;
                candidate = with_suffix(path, &format!("-{n}"));
            }
            Err(e) => return Err(e),
        }
    }
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
