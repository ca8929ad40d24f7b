//! Shared by the scale-out tests: a throwaway `nats-server -js` on a free loopback port with its own
//! store (killed on drop), and `omnigen worker` processes whose stderr is kept. Debian's
//! `nats-server` package provides the binary (`.ci/run` installs it); `OMNIGEN_SKIP_NATS=1` skips
//! these tests explicitly on a machine without it.
#![allow(dead_code)]

pub mod scene;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether the test should be skipped (said on stderr).
pub fn skipped() -> bool {
    if std::env::var_os("OMNIGEN_SKIP_NATS").is_some_and(|v| v == "1") {
        eprintln!("OMNIGEN_SKIP_NATS=1: scale-out test skipped");
        return true;
    }
    false
}

/// A running `nats-server` with JetStream.
pub struct Nats {
    child: Child,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    store: tempfile::TempDir,
}

impl Nats {
    /// Starts `nats-server -js` on a free port with a fresh store and waits until it accepts
    /// connections.
    pub fn start() -> Self {
        let store = tempfile::tempdir().expect("temp store");
        let port = free_port();
        Nats {
            child: spawn(port, store.path()),
            url: format!("nats://127.0.0.1:{port}"),
            port,
            store,
        }
    }

    /// `kill -9` of nats-server, then a new one on the same port and file store.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, self.store.path());
    }
}

/// Starts `nats-server -js` on `port` with its store in `store` and waits until it listens.
fn spawn(port: u16, store: &Path) -> Child {
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start nats-server ({e}): install Debian's nats-server package (apt-get install -y nats-server), or set OMNIGEN_SKIP_NATS=1 to skip")
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `--output-dir DIR/NAME/output --temp-dir DIR/NAME/temp`, unless `extra` names its own.
fn own_folders(dir: &Path, name: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    if extra.contains(&"--output-dir") {
        return Vec::new();
    }
    vec![
        "--output-dir".into(),
        dir.join(name).join("output").into(),
        "--temp-dir".into(),
        dir.join(name).join("temp").into(),
    ]
}

/// A running `omnigen worker`.
pub struct Worker {
    child: Option<Child>,
    /// Its `--name`.
    pub name: String,
    log: Arc<Mutex<String>>,
}

impl Worker {
    /// Starts `omnigen worker --queue URL --name NAME --test-nodes` with its folders under `dir`
    /// (the input folder is `input`, shared with the server) and waits for its banner.
    pub fn start(url: &str, name: &str, dir: &Path, input: &Path) -> Self {
        Self::start_with(url, name, dir, input, &[])
    }

    /// [`Worker::start`] with more flags (`--plugins DIR`, `--files shared`, `--device cpu` …).
    pub fn start_with(url: &str, name: &str, dir: &Path, input: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnigen"))
            .arg("worker")
            .args([
                "--queue",
                url,
                "--name",
                name,
                "--test-nodes",
                "--input-dir",
            ])
            .arg(input)
            .args(own_folders(dir, name, extra))
            .args(extra)
            .env("OMNIGEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start omnigen worker");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let worker = Worker {
            child: Some(child),
            name: name.to_string(),
            log,
        };
        worker.wait_for_log("its banner", |log| log.contains("taking prompts from"));
        worker
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether its log has a line with both `a` and `b`.
    pub fn logged(&self, a: &str, b: &str) -> bool {
        self.log().lines().any(|l| l.contains(a) && l.contains(b))
    }

    /// Polls its log until `ready` holds (a guard against a hang, not a speed check).
    pub fn wait_for_log(&self, what: &str, ready: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ready(&self.log()) {
            assert!(
                Instant::now() < deadline,
                "worker {} never showed {what}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the worker");
            let _ = child.wait();
        }
    }

    /// Whether the process has ended (on its own: a crash).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| c.try_wait().ok().flatten().is_some())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill9();
    }
}
