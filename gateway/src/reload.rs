//! Live policy reload: on SIGHUP and when the policy file (or a list file it reads)
//! changes.
//!
//! A reload compiles the whole policy first and swaps it in atomically only when it is
//! valid; a broken file leaves the running policy untouched and logs every located
//! error. Limits whose definition did not change keep their counters (the engine
//! matches them by rule, key, rate and burst), so a reload is not a free reset for a
//! client that is being limited.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a save must be quiet before it is reloaded.
const QUIET: Duration = Duration::from_millis(150);

use notify::{RecursiveMode, Watcher};
use parking_lot::Mutex;
use policy::Engine;

use crate::tracker::Tracker;

/// The outcome of one reload attempt, kept for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new policy is running.
    Loaded {
        /// Limits that kept their counters.
        kept: usize,
        /// Limits that start empty.
        reset: usize,
    },
    /// The file was invalid; the old policy keeps running.
    Rejected(String),
}

/// Where the policy comes from: its file, and whether loopback peers are trusted as
/// proxies on top of what the file says (`[policy] trust_loopback`, and `gateway demo`).
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The policy file.
    pub path: PathBuf,
    /// Believe forwarding headers from 127.0.0.0/8 and ::1 too.
    pub trust_loopback: bool,
}

impl PolicySource {
    /// Compiles the file, then applies `trust_loopback`; every start and reload goes
    /// through here, so a reload never drops the demo's trust.
    pub fn compile(&self) -> Result<policy::Policy, policy::PolicyErrors> {
        let mut compiled = policy::compile_file(&self.path)?;
        if self.trust_loopback {
            compiled.trust_loopback();
        }
        Ok(compiled)
    }
}

/// Reloads one engine from one file.
pub struct Reloader {
    engine: Arc<Engine>,
    /// Its challenge book takes the reloaded `[pow]` capacity and lifetime.
    tracker: Option<Arc<Tracker>>,
    path: PathBuf,
    trust_loopback: bool,
    /// Serialises reloads from the signal thread and the watcher thread.
    lock: Mutex<()>,
    /// SHA-256 of the files of the policy in force ([`policy_digest`]).
    digest: Mutex<String>,
}

impl Reloader {
    /// A reloader for `engine` (and the tracker's challenge book), reading `path`.
    pub fn new(engine: Arc<Engine>, tracker: Option<Arc<Tracker>>, path: PathBuf) -> Arc<Self> {
        Self::for_source(engine, tracker, PolicySource { path, trust_loopback: false })
    }

    /// A reloader that compiles `source` (its file and its loopback trust).
    pub fn for_source(
        engine: Arc<Engine>,
        tracker: Option<Arc<Tracker>>,
        source: PolicySource,
    ) -> Arc<Self> {
        let PolicySource { path, trust_loopback } = source;
        let digest = Mutex::new(policy_digest(&engine.policy().source_files(), &path));
        Arc::new(Reloader { engine, tracker, path, trust_loopback, lock: Mutex::new(()), digest })
    }

    /// The policy file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 (hex) of the files of the policy in force, to tell which version runs.
    pub fn loaded_digest(&self) -> String {
        self.digest.lock().clone()
    }

    /// Compiles the file and swaps it in when valid.
    pub fn reload(&self, trigger: &str) -> ReloadOutcome {
        let _guard = self.lock.lock();
        let source = PolicySource { path: self.path.clone(), trust_loopback: self.trust_loopback };
        match source.compile() {
            Ok(compiled) => {
                *self.digest.lock() = policy_digest(&compiled.source_files(), &self.path);
                if let Some(tracker) = &self.tracker {
                    tracker.challenges().reconfigure(compiled.pow());
                }
                let report = self.engine.reload(compiled);
                tracing::info!(
                    trigger,
                    file = %self.path.display(),
                    kept = report.kept.len(),
                    reset = report.reset.len(),
                    removed = report.removed.len(),
                    "policy reloaded"
                );
                ReloadOutcome::Loaded { kept: report.kept.len(), reset: report.reset.len() }
            }
            Err(errors) => {
                let text = errors.to_string();
                tracing::error!(
                    trigger,
                    "policy reload rejected, the previous policy stays in force:\n{text}"
                );
                ReloadOutcome::Rejected(text)
            }
        }
    }

    /// Files whose change should trigger a reload (the policy and its list files).
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = self.engine.policy().source_files();
        if !files.iter().any(|f| f == &self.path) {
            files.push(self.path.clone());
        }
        files.into_iter().map(|f| absolute(&f)).collect()
    }

    /// Starts the SIGHUP thread and, when `watch`, the file watcher thread.
    pub fn start(self: &Arc<Self>, watch: bool) -> std::io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])?;
        let me = self.clone();
        std::thread::Builder::new().name("policy-sighup".into()).spawn(move || {
            for _ in signals.forever() {
                me.reload("SIGHUP");
            }
        })?;
        if watch {
            let me = self.clone();
            std::thread::Builder::new()
                .name("policy-watch".into())
                .spawn(move || me.watch_loop())?;
        }
        Ok(())
    }

    /// Watches the folders of the policy and list files (editors replace files by
    /// renaming, which a watch on the file itself would miss) and reloads after a
    /// short quiet period, so one save that writes several events reloads once.
    fn watch_loop(self: Arc<Self>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = match notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the policy file; SIGHUP still reloads");
                return;
            }
        };
        let mut watched_dirs: Vec<PathBuf> = Vec::new();
        loop {
            let files = self.watched_files();
            for dir in files.iter().filter_map(|f| f.parent().map(Path::to_path_buf)) {
                if !watched_dirs.contains(&dir)
                    && watcher.watch(&dir, RecursiveMode::NonRecursive).is_ok()
                {
                    watched_dirs.push(dir);
                }
            }
            let Ok(first) = rx.recv() else { return };
            if !is_relevant(&first, &files) {
                // Other files in the same folder (a log file, say) are not ours.
                continue;
            }
            // Quiet period: gather the burst of events one save produces. Only events
            // about our files extend it, so a busy folder cannot postpone a reload.
            let mut quiet_until = Instant::now() + QUIET;
            while let Some(left) = quiet_until.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(next) if is_relevant(&next, &files) => quiet_until = Instant::now() + QUIET,
                    Ok(_) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            self.reload("file change");
        }
    }
}

/// SHA-256 over the policy file and the list files it reads (each path's contents
/// in path order), as hex. A file that cannot be read counts as empty.
pub fn policy_digest(files: &[PathBuf], main: &Path) -> String {
    use sha2::Digest;
    let mut all: Vec<PathBuf> = files.to_vec();
    if !all.iter().any(|f| f == main) {
        all.push(main.to_path_buf());
    }
    all.sort();
    all.dedup();
    let mut h = sha2::Sha256::new();
    for f in &all {
        h.update(std::fs::read(f).unwrap_or_default());
    }
    hex::encode(h.finalize())
}

fn is_relevant(event: &notify::Result<notify::Event>, files: &[PathBuf]) -> bool {
    match event {
        Ok(ev) => {
            !matches!(ev.kind, notify::EventKind::Access(_))
                && ev.paths.iter().any(|p| files.iter().any(|f| f == &absolute(p)))
        }
        Err(_) => false,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pow_policy(max: u32, ttl: u32) -> String {
        format!("version = 1\n[pow]\nmax_challenges = {max}\nchallenge_ttl_secs = {ttl}\n")
    }

    #[test]
    fn a_reload_applies_the_challenge_books_settings_and_a_bad_file_keeps_them() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, pow_policy(10, 60)).expect("write");
        let compiled = policy::compile_file(&path).expect("policy");
        let tracker = Arc::new(Tracker::new(&compiled, None, None).expect("tracker"));
        let reloader =
            Reloader::new(Arc::new(Engine::new(compiled)), Some(tracker.clone()), path.clone());
        assert_eq!(tracker.challenges().settings(), (10, 60));

        std::fs::write(&path, pow_policy(20, 120)).expect("write");
        assert!(matches!(reloader.reload("test"), ReloadOutcome::Loaded { .. }));
        assert_eq!(tracker.challenges().settings(), (20, 120));

        std::fs::write(&path, "version = 1\n[pow]\nmax_challenges = -1\n").expect("write");
        assert!(matches!(reloader.reload("test"), ReloadOutcome::Rejected(_)));
        assert_eq!(tracker.challenges().settings(), (20, 120), "a rejected file changes nothing");
    }

    #[test]
    fn loopback_trust_survives_a_reload_and_is_never_in_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("policy.toml");
        std::fs::write(&path, "version = 1\n[client]\ntrusted_proxies = []\n").expect("write");
        let loopback: std::net::IpAddr = "127.0.0.5".parse().expect("ip");
        let plain = PolicySource { path: path.clone(), trust_loopback: false };
        assert!(!plain.compile().expect("policy").client().is_trusted(loopback));
        let source = PolicySource { path: path.clone(), trust_loopback: true };
        let compiled = source.compile().expect("policy");
        assert!(compiled.client().is_trusted(loopback));
        assert!(compiled.client().is_trusted("::1".parse().expect("ip")));
        assert!(!compiled.client().is_trusted("10.0.0.1".parse().expect("ip")));
        let engine = Arc::new(Engine::new(compiled));
        let reloader = Reloader::for_source(engine.clone(), None, source);
        assert!(matches!(reloader.reload("test"), ReloadOutcome::Loaded { .. }));
        assert!(engine.current_policy().client().is_trusted(loopback), "kept across a reload");
    }
}
