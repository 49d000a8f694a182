//! The log writer: a lossy non-blocking queue in front of stdout or an append-only file, so a
//! slow disk never stalls a request, with a count of the lines it had to drop.

use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

use super::TelemetryError;

/// Lines queued before new ones are dropped (and counted): about 5 MB of typical lines, and
/// at most about 80 MB of the longest a request can cause (user-controlled fields are clipped
/// at [`super::MAX_FIELD_BYTES`]), when the output stalls.
const BUFFERED_LINES: usize = 16_384;

/// Bytes gathered before a write to the file; the queue's worker also flushes whenever the
/// queue runs empty, so lines reach the file promptly.
const FILE_BUFFER: usize = 64 * 1024;

/// How long the writer thread rests after each flush (see [`Gathering`]).
const FLUSH_PAUSE: Duration = Duration::from_millis(5);

/// The installed writer's drop counter, read by [`dropped_lines`].
static INSTALLED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread alive; dropping it flushes the queued lines (waiting at most about
/// a second). Hold it in `main` until exit.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard {
    /// The non-blocking worker; flushes on drop.
    _worker: WorkerGuard,
    /// Lines dropped because the queue was full.
    dropped: ErrorCounter,
}

impl LogGuard {
    /// Lines this writer dropped because it could not keep up.
    #[must_use]
    pub fn dropped_lines(&self) -> u64 {
        to_u64(self.dropped.dropped_lines())
    }

    /// Makes this writer's counter the one [`dropped_lines`] reports.
    pub(super) fn publish_counter(&self) {
        // `init` can install only one global subscriber, so this is set at most once.
        let _ = INSTALLED.set(self.dropped.clone());
    }
}

/// Lines the global log writer (installed by [`super::init`]) dropped because it could not
/// keep up; 0 before `init`. Exposed on `/metrics`.
pub fn dropped_lines() -> u64 {
    INSTALLED.get().map_or(0, |c| to_u64(c.dropped_lines()))
}

fn to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Opens the non-blocking writer over `file` (appending, parent directories created) or
/// stdout.
pub(super) fn open(file: Option<&Path>) -> Result<(NonBlocking, LogGuard), TelemetryError> {
    let sink: Box<dyn Write + Send> = match file {
        None => Box::new(Gathering(io::stdout())),
        Some(path) => Box::new(Gathering(BufWriter::with_capacity(
            FILE_BUFFER,
            append(path)?,
        ))),
    };
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(BUFFERED_LINES)
        .thread_name("tokengate-log")
        .finish(sink);
    let dropped = writer.error_counter();
    Ok((
        writer,
        LogGuard {
            _worker: worker,
            dropped,
        },
    ))
}

/// The sink behind the queue. The queue's worker writes what it finds queued, flushes, then
/// waits on the queue again; resting [`FLUSH_PAUSE`] after each flush lets a busy gateway's
/// lines gather in the queue, so they are written (and the worker woken) about every five
/// milliseconds instead of once a line. A line arriving after a quiet spell is still written
/// at once.
struct Gathering<W>(W);

impl<W: Write> Write for Gathering<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.0.flush();
        std::thread::sleep(FLUSH_PAUSE);
        flushed
    }
}

/// Whether `serve` could open `path` as its log file, without creating or changing anything
/// lasting: an existing file is opened for appending; otherwise the nearest directory that
/// exists must be one a file can be created in (checked by creating a file there, which is
/// removed at once).
pub fn check_log_file(path: &Path) -> Result<(), TelemetryError> {
    let fail = |cause| TelemetryError::File {
        path: path.to_owned(),
        cause,
    };
    match fs::metadata(path) {
        Ok(_) => {
            return OpenOptions::new()
                .append(true)
                .open(path)
                .map(drop)
                .map_err(fail);
        }
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
        Err(_) => {}
    }
    // `serve` creates the missing directories, then the file.
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        dir = d.parent();
    }
    let dir = dir
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(fail(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        )));
    }
    let probe = dir.join(format!(".tokengate-check-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(fail)?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

fn append(path: &Path) -> Result<fs::File, TelemetryError> {
    let fail = |cause| TelemetryError::File {
        path: path.to_owned(),
        cause,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(fail)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)
}
