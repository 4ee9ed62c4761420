//! A JSON-lines file written off the request path.
//!
//! The request path hands a finished line to a bounded queue and goes on
//! ([`LineSink::write`] never waits); one thread of its own appends the lines to the
//! file and flushes whenever the queue runs empty, so a line is on disk moments after
//! it was written and a slow disk never stalls a request. When the queue is full the
//! line is dropped and counted ([`LineSink::dropped`]) rather than making the request
//! wait: the gateway keeps serving under a flood, and the count says what is missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

/// Lines queued before new ones are dropped: a few MB at most.
pub const QUEUE_LINES: usize = 16 * 1024;

enum Msg {
    Line(String),
    /// Answered once every line queued before it is written and flushed.
    Flush(mpsc::Sender<()>),
}

/// The writing end of one JSON-lines file.
pub struct LineSink {
    tx: SyncSender<Msg>,
    dropped: Arc<AtomicU64>,
    path: PathBuf,
}

impl LineSink {
    /// Opens `path` for appending (created with mode 0600: it names clients) and
    /// starts its writer thread.
    pub fn open(path: &Path) -> std::io::Result<LineSink> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let name = path.display().to_string();
        std::thread::Builder::new()
            .name("jsonl-writer".into())
            .spawn(move || write_lines(rx, std::io::BufWriter::new(file), &name))?;
        Ok(LineSink { tx, dropped: Arc::new(AtomicU64::new(0)), path: path.to_path_buf() })
    }

    /// Queues one line (without its newline); `false` when it was dropped because the
    /// queue is full or the writer has stopped.
    pub fn write(&self, line: String) -> bool {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits (at most `limit`) until every line queued so far is written and flushed;
    /// `false` when that did not happen in time. For shutdown, never the request path.
    pub fn flush(&self, limit: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.tx.send_timeout_compat(Msg::Flush(done), limit).is_err() {
            return false;
        }
        wait.recv_timeout(limit).is_ok()
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `SyncSender` has no `send_timeout` on stable; a flush marker is tiny, so a few
/// bounded retries of `try_send` stand in for it.
trait SendTimeout {
    fn send_timeout_compat(&self, msg: Msg, limit: Duration) -> Result<(), ()>;
}

impl SendTimeout for SyncSender<Msg> {
    fn send_timeout_compat(&self, mut msg: Msg, limit: Duration) -> Result<(), ()> {
        let step = Duration::from_millis(5);
        let tries = (limit.as_millis() / step.as_millis()).max(1);
        for _ in 0..tries {
            match self.try_send(msg) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) => {
                    msg = back;
                    std::thread::sleep(step);
                }
                Err(TrySendError::Disconnected(_)) => return Err(()),
            }
        }
        Err(())
    }
}

/// The writer thread: drains the queue, flushes when it is empty. A write error is
/// logged once per run of errors (not per line) and the lines of that run are lost.
fn write_lines(rx: Receiver<Msg>, mut out: std::io::BufWriter<std::fs::File>, name: &str) {
    let mut failing = false;
    let mut waiting: Vec<mpsc::Sender<()>> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(mut line) => {
                    line.push('\n');
                    report(out.write_all(line.as_bytes()), &mut failing, name);
                }
                Msg::Flush(done) => waiting.push(done),
            }
            next = rx.try_recv().ok();
        }
        report(out.flush(), &mut failing, name);
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
    let _ = out.flush();
}

fn report(result: std::io::Result<()>, failing: &mut bool, name: &str) {
    match result {
        Ok(()) => *failing = false,
        Err(e) if !*failing => {
            *failing = true;
            tracing::error!(file = name, error = %e, "cannot write to the log file; lines are lost until it works again");
        }
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_reach_the_file_in_order_and_a_flush_waits_for_them() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("x.jsonl");
        let sink = LineSink::open(&path).expect("open");
        for i in 0..100 {
            assert!(sink.write(format!("{{\"n\":{i}}}")));
        }
        assert!(sink.flush(Duration::from_secs(10)));
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        assert_eq!((lines[0], lines[99]), ("{\"n\":0}", "{\"n\":99}"));
        assert_eq!(sink.dropped(), 0);
    }
}
