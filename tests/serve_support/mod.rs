//! Shared by the root tests that drive a real `omnigen serve` process: start it on a free port and
//! read the port from its banner, kill it with SIGKILL, and a minimal blocking HTTP/1.1 client (the
//! binary's tests carry no HTTP crate).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// Longest we wait for the server to do something. It guards against a hang; it is not a speed
/// assertion.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A running `omnigen serve`.
pub struct Served {
    child: Child,
    /// The port it listens on (read from its banner).
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `omnigen serve --port 0 --data-dir DATA_DIR EXTRA…` in `workdir` and waits for its banner.
    pub fn start(workdir: &Path, data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnigen"))
            .current_dir(workdir)
            .arg("serve")
            .args(["--port", "0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("OMNIGEN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start omnigen serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = mpsc::channel();
        let sink = Arc::clone(&log);
        // Drains stderr for the whole life of the process (a full pipe would block the server).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.starts_with("serving") {
                    let port = line
                        .rsplit_once("127.0.0.1:")
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .and_then(|p| p.parse::<u16>().ok());
                    let _ = port_tx.send(port);
                }
                let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        let port = match port_rx.recv_timeout(PATIENCE) {
            Ok(Some(port)) => port,
            Ok(None) => panic!("no port in the banner:\n{}", log.lock().unwrap()),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "omnigen serve printed no banner within {PATIENCE:?} (exit {status:?}):\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Served { child, port, log }
    }

    /// What the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `kill -9`: no shutdown code runs. Returns once the process is gone.
    pub fn kill9(mut self) {
        // std's `Child::kill` sends SIGKILL on Unix.
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// `GET path` → (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Json) {
        let (status, body) = self.request("GET", path, None);
        (status, parse(path, &body))
    }

    /// `GET path` → (status, raw body).
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body → (status, JSON body).
    pub fn post(&self, path: &str, body: &Json) -> (u16, Json) {
        let (status, answer) = self.request("POST", path, Some(body.to_string().as_bytes()));
        (status, parse(path, &answer))
    }

    /// Queues `{"prompt": graph}`; returns the prompt id.
    pub fn queue(&self, graph: &Json) -> String {
        let (status, answer) = self.post("/prompt", &serde_json::json!({ "prompt": graph }));
        assert_eq!(status, 200, "POST /prompt: {answer}\n{}", self.log());
        answer["prompt_id"]
            .as_str()
            .expect("a prompt_id")
            .to_string()
    }

    /// Ids of the running prompts.
    pub fn running(&self) -> Vec<String> {
        let (_, queue) = self.get("/queue");
        queue["queue_running"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item[1].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Polls until `ready()` holds; panics naming `what` (with the server log) after [`PATIENCE`].
    pub fn wait_until(&self, what: &str, mut ready: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "gave up after {PATIENCE:?} waiting for {what}; server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
        http(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\nserver log:\n{}", self.log()))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(path: &str, body: &[u8]) -> Json {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// One HTTP/1.1 exchange over a fresh connection (`Connection: close`), the body sent as JSON.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>), String> {
    http_typed(port, method, path, "application/json", body)
}

/// [`http`] with the body's `Content-Type`.
pub fn http_typed(
    port: u16,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>), String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(PATIENCE))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("send: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            format!(
                "no response head in {:?}",
                String::from_utf8_lossy(&response)
            )
        })?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut payload = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        payload = dechunk(&payload);
    }
    Ok((status, payload))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        let end = (start + size).min(data.len());
        body.extend_from_slice(&data[start..end]);
        data = &data[(end + 2).min(data.len())..];
    }
    body
}

/// Writes a small RGB PNG with a gradient, so a decoded copy can be compared pixel for pixel.
pub fn write_png(path: &Path, width: u32, height: u32) {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 30) as u8, 128])
    });
    image.save(path).expect("write test png");
}

/// The `[type, data]` status messages of a history entry, as types.
pub fn message_types(entry: &Json) -> Vec<String> {
    entry["status"]["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m[0].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
