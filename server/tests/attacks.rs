//! Hostile traffic, table-driven: every attack below is sent to a real server (with an access token, on
//! a loopback port) as raw bytes, so headers can be missing, doubled or malformed. Each must be refused
//! with the status the rule gives and a message naming the reason; a few legitimate requests of the
//! same shapes must pass (the refusals are not blanket); and a sentinel folder next to the data dir —
//! the target of every traversal and symlink — must be unchanged afterwards, its secret never served.
//!
//! Unix only: symlinks, and `/proc` for the open-file limit.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use omnigen_server::ServerConfig;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "s3cret-token";
const SECRET: &str = "SENTINEL-SECRET-7f3a";
/// Longest any single exchange may take; a guard against a hang, not a speed assertion.
const PATIENCE: Duration = Duration::from_secs(60);
/// A real (tiny) PNG: uploads are decoded before they are kept.
static PNG: std::sync::LazyLock<Vec<u8>> =
    std::sync::LazyLock::new(|| common::png(2, 2, [9, 8, 7, 255]));

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: full control over every byte sent.

/// One answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response: headers, then the body by Content-Length, chunked coding, or to the end (a
/// 101 has none).
async fn read_reply<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Reply, String> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the response head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "connection closed before a response head ({} bytes: {:?})",
                buf.len(),
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    if status == 101 {
        return Ok(reply);
    }
    let length = reply.header("content-length").and_then(|v| v.parse().ok());
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let done = |rest: &[u8]| match length {
        Some(n) => rest.len() >= n,
        None => chunked && rest.ends_with(b"0\r\n\r\n"),
    };
    while !done(&rest) {
        let mut chunk = [0u8; 65536];
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
            // The server may reset a connection whose request it stopped reading.
            Err(_) if length.is_none() && !chunked => break,
            Err(e) => return Err(format!("reading the response body: {e}")),
        }
    }
    reply.body = if chunked { dechunk(&rest) } else { rest };
    Ok(reply)
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

/// Sends `request` and reads the answer, within [`PATIENCE`].
async fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Reply, String> {
    let run = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        read_reply(&mut stream).await
    };
    tokio::time::timeout(PATIENCE, run)
        .await
        .map_err(|_| format!("no answer within {PATIENCE:?}"))?
}

/// A request to build as bytes. By default it carries the right Host and the token.
#[derive(Clone)]
struct Req {
    method: &'static str,
    target: String,
    /// `None`: no Host header at all.
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    token: bool,
    keep_alive: bool,
}

fn get(target: impl Into<String>) -> Req {
    Req {
        method: "GET",
        target: target.into(),
        host: Some(String::new()), // filled with the server's address
        headers: Vec::new(),
        body: Vec::new(),
        token: true,
        keep_alive: false,
    }
}

fn post(target: impl Into<String>, body: impl Into<Vec<u8>>) -> Req {
    Req {
        method: "POST",
        body: body.into(),
        ..get(target)
    }
}

/// A WebSocket upgrade request.
fn upgrade() -> Req {
    get("/ws?clientId=attacker")
        .with("Connection", "Upgrade")
        .with("Upgrade", "websocket")
        .with("Sec-WebSocket-Version", "13")
        .with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
}

impl Req {
    fn with(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
    fn host(mut self, host: Option<&str>) -> Self {
        self.host = host.map(String::from);
        self
    }
    fn no_token(mut self) -> Self {
        self.token = false;
        self
    }
    fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }

    fn bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        match &self.host {
            Some(h) if h.is_empty() => head.push_str(&format!("Host: {addr}\r\n")),
            Some(h) => head.push_str(&format!("Host: {h}\r\n")),
            None => {}
        }
        if self.token {
            head.push_str(&format!("Authorization: Bearer {TOKEN}\r\n"));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let upgrading = self.headers.iter().any(|(k, _)| k == "Upgrade");
        if !upgrading && !self.keep_alive {
            head.push_str("Connection: close\r\n");
        }
        let declared = self.headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        });
        if self.method != "GET" && !declared {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A multipart upload of one `image` file, with extra text fields.
fn upload(file_name: &str, bytes: &[u8], fields: &[(&str, &str)]) -> Req {
    let boundary = "----omnigen-attack-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{file_name}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    post("/upload/image", body).with(
        "Content-Type",
        &format!("multipart/form-data; boundary={boundary}"),
    )
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn view(query: &str) -> Req {
    get(format!("/view?{query}"))
}

fn prompt_body() -> Vec<u8> {
    common::graph(7, "attacker").to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The scene: a data dir and a sentinel folder beside it.

struct Scene {
    _root: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    sentinel: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let path = root.path().canonicalize().expect("canonical temp dir");
        let sentinel = path.join("sentinel");
        std::fs::create_dir_all(sentinel.join("sub")).unwrap();
        std::fs::write(sentinel.join("secret.txt"), SECRET).unwrap();
        std::fs::write(
            sentinel.join("secret.png"),
            [&PNG[..], SECRET.as_bytes()].concat(),
        )
        .unwrap();
        std::fs::write(sentinel.join("sub/evil.png"), SECRET).unwrap();
        let data = path.join("data");
        for folder in ["input", "output", "temp"] {
            std::fs::create_dir_all(data.join(folder)).unwrap();
        }
        let link = |target: &Path, at: &str| std::os::unix::fs::symlink(target, data.join(at));
        link(&sentinel, "input/link").unwrap();
        link(&sentinel.join("secret.png"), "input/secret-link.png").unwrap();
        link(&sentinel, "output/out-link").unwrap();
        std::fs::create_dir_all(data.join("output/sub")).unwrap();
        std::fs::write(data.join("output/sub/ok.png"), &*PNG).unwrap();
        for (name, content) in [
            ("page.html", "<script>alert(1)</script>"),
            ("page.htm", "<script>alert(1)</script>"),
            (
                "page.xhtml",
                "<html xmlns='http://www.w3.org/1999/xhtml'><script>alert(1)</script></html>",
            ),
            (
                "pic.svg",
                "<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            ),
            ("PIC.SVG", "<svg onload='alert(1)'/>"),
            ("feed.xml", "<x/>"),
            ("app.js", "alert(1)"),
            ("style.css", "body{}"),
            ("noext", "<script>alert(1)</script>"),
        ] {
            std::fs::write(data.join("output").join(name), content).unwrap();
        }
        Scene {
            root: path,
            _root: root,
            data,
            sentinel,
        }
    }

    /// Everything under the sentinel (path → link target or bytes), and the root's own entries.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut seen = BTreeMap::new();
        walk(&self.sentinel, &self.root, &mut seen);
        for entry in std::fs::read_dir(&self.root).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            seen.insert(format!("root entry {name}"), Vec::new());
        }
        seen
    }
}

fn walk(dir: &Path, base: &Path, seen: &mut BTreeMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.strip_prefix(base).unwrap().display().to_string();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            seen.insert(format!("{name}/"), Vec::new());
            walk(&path, base, seen);
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            seen.insert(name, target.display().to_string().into_bytes());
        } else {
            seen.insert(name, std::fs::read(&path).unwrap());
        }
    }
}

async fn start(scene: &Scene) -> TestServer {
    let mut config = ServerConfig::new(&scene.data);
    config.token = Some(TOKEN.into());
    TestServer::start_with(config).await
}

/// How many connections the idle-connection attack may open: both ends live in this process.
fn idle_connection_budget() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        })
        .unwrap_or(1024);
    1000.min(soft.saturating_sub(300) / 2)
}

// ---------------------------------------------------------------------------------------------
// The attacks.

/// How an attack is carried out.
enum Probe {
    /// One request.
    Http(Req),
    /// A request head, then a body streamed in chunks (no Content-Length) until the server answers.
    Flood {
        head: Req,
        prefix: Vec<u8>,
        bytes: usize,
    },
    /// A request declaring a huge Content-Length and sending only a little of it.
    Declared { head: Req, declared: usize },
}

struct Attack {
    name: &'static str,
    probe: Probe,
    status: u16,
    /// A word the refusal's message contains (lowercase), proving it is refused for that reason.
    says: &'static str,
}

fn attack(name: &'static str, status: u16, says: &'static str, request: Req) -> Attack {
    Attack {
        name,
        probe: Probe::Http(request),
        status,
        says,
    }
}

#[rustfmt::skip] // one attack per line reads as the table it is
fn attacks(scene: &Scene, port: u16) -> Vec<Attack> {
    let abs_secret = enc(&scene.sentinel.join("secret.txt").display().to_string());
    let abs_dir = enc(&scene.sentinel.display().to_string());
    let long = "a".repeat(300);
    let own = format!("127.0.0.1:{port}");
    let hundred_mb = 100 * 1024 * 1024;
    let flood_upload_prefix = b"------b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n\r\n\x89PNG\r\n\x1a\n".to_vec();
    vec![
        // --- paths on /view -----------------------------------------------------------------
        attack("view ../ in filename", 403, "not allowed", view("filename=..%2F..%2Fsentinel%2Fsecret.txt")),
        attack("view ../ in subfolder", 403, "not allowed", view("filename=secret.txt&subfolder=..%2F..%2Fsentinel")),
        attack("view ../ behind a real subfolder", 403, "not allowed", view("filename=secret.txt&subfolder=sub%2F..%2F..%2F..%2Fsentinel")),
        attack("view %2e%2e (decoded once to ..)", 403, "not allowed", view("filename=%2e%2e%2f%2e%2e%2fsentinel%2fsecret.txt")),
        attack("view double-encoded %252e%252e", 403, "forbidden character", view("filename=%252e%252e%252f%252e%252e%252fsentinel%252fsecret.txt")),
        attack("view absolute filename", 403, "not allowed", view(&format!("filename={abs_secret}"))),
        attack("view absolute subfolder", 403, "not allowed", view(&format!("filename=secret.txt&subfolder={abs_dir}"))),
        attack("view C:\\ drive path", 403, "forbidden character", view("filename=C%3A%5Csentinel%5Csecret.txt")),
        attack("view backslash traversal", 403, "forbidden character", view("filename=..%5C..%5Csentinel%5Csecret.txt")),
        attack("view NUL byte", 403, "forbidden character", view("filename=ok.png%00.txt&subfolder=sub")),
        attack("view control character", 403, "forbidden character", view("filename=ok%0A.png&subfolder=sub")),
        attack("view overlong file name", 403, "too long", view(&format!("filename={long}.png"))),
        attack("view overlong subfolder", 403, "too long", view(&format!("filename=ok.png&subfolder={long}"))),
        attack("view symlinked folder in input pointing out", 403, "outside", view("filename=secret.txt&subfolder=link&type=input")),
        attack("view symlinked file in input pointing out", 403, "outside", view("filename=secret-link.png&type=input")),
        attack("view symlinked folder in output pointing out", 403, "outside", view("filename=secret.png&subfolder=out-link")),
        attack("view type traversal", 400, "not one of", view("filename=secret.txt&type=..%2F..%2Fsentinel")),
        attack("view annotated type traversal", 400, "not one of", view("filename=secret.txt%20%5B..%2Fsentinel%5D")),
        // --- uploads ------------------------------------------------------------------------
        attack("upload into ../ subfolder", 403, "not allowed", upload("evil.png", &PNG, &[("subfolder", "../../sentinel")])),
        attack("upload into absolute subfolder", 403, "not allowed", upload("evil.png", &PNG, &[("subfolder", &scene.sentinel.display().to_string())])),
        attack("upload into backslash subfolder", 403, "forbidden character", upload("evil.png", &PNG, &[("subfolder", "..\\..\\sentinel")])),
        attack("upload through a symlinked folder", 403, "outside", upload("evil.png", &PNG, &[("subfolder", "link/sub"), ("overwrite", "true")])),
        attack("upload over a symlink pointing out", 403, "outside", upload("secret-link.png", &PNG, &[("overwrite", "true")])),
        attack("upload with NUL in the name", 400, "cannot read the upload", upload("a\0.png", &PNG, &[])),
        attack("upload with a tab in the name", 403, "forbidden character", upload("a\t.png", &PNG, &[])),
        attack("upload with an overlong name", 403, "too long", upload(&format!("{long}.png"), &PNG, &[])),
        attack("upload into a type traversal", 400, "not one of", upload("evil.png", &PNG, &[("type", "../sentinel")])),
        attack("upload html disguised as png", 400, "content does not match", upload("x.png", b"<html><script>alert(1)</script></html>", &[])),
        attack("upload svg disguised as webp", 400, "content does not match", upload("x.webp", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", &[])),
        attack("upload js disguised as jpeg", 400, "content does not match", upload("x.jpg", b"alert(document.cookie)", &[])),
        attack("upload svg by name", 400, "only png", upload("x.svg", b"<svg onload='alert(1)'/>", &[])),
        attack("upload html by name", 400, "only png", upload("x.html", b"<script>alert(1)</script>", &[])),
        attack("upload png.html double extension", 400, "only png", upload("x.png.html", &PNG, &[])),
        // --- Host ---------------------------------------------------------------------------
        attack("host evil.example", 403, "not served here", get("/prompt").host(Some("evil.example"))),
        attack("host localhost.evil.example", 403, "not served here", get("/prompt").host(Some(&format!("localhost.evil.example:{port}")))),
        attack("host 127.0.0.1.evil.example", 403, "not served here", get("/prompt").host(Some("127.0.0.1.evil.example"))),
        attack("host [::1].evil.example", 403, "not served here", get("/prompt").host(Some("[::1].evil.example"))),
        attack("host evil@localhost", 403, "not served here", get("/prompt").host(Some("evil@localhost"))),
        attack("host decimal IP 2130706433", 403, "not served here", get("/prompt").host(Some(&format!("2130706433:{port}")))),
        attack("host hex IP 0x7f.0.0.1", 403, "not served here", get("/prompt").host(Some("0x7f.0.0.1"))),
        attack("host 0.0.0.0", 403, "not served here", get("/prompt").host(Some(&format!("0.0.0.0:{port}")))),
        attack("host missing", 400, "host header is required", get("/prompt").host(None)),
        attack("host doubled (allowed + foreign)", 400, "more than one host", get("/prompt").with("Host", "evil.example")),
        // --- Origin -------------------------------------------------------------------------
        attack("origin foreign on POST /prompt", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", "http://evil.example")),
        attack("origin null on POST /prompt", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", "null")),
        attack("origin scheme mismatch (https)", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", &format!("https://{own}"))),
        attack("origin port mismatch", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", &format!("http://127.0.0.1:{}", port + 1))),
        attack("origin missing port", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", "http://127.0.0.1")),
        attack("origin other loopback name", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", &format!("http://localhost:{port}"))),
        attack("origin with userinfo", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", &format!("http://{own}@evil.example"))),
        attack("origin look-alike suffix", 403, "cross-origin", post("/prompt", prompt_body()).with("Origin", &format!("http://{own}.evil.example"))),
        attack("origin foreign on POST /queue clear", 403, "cross-origin", post("/queue", json!({"clear": true}).to_string()).with("Origin", "http://evil.example")),
        attack("origin foreign on upload", 403, "cross-origin", upload("ok.png", &PNG, &[]).with("Origin", "http://evil.example")),
        attack("origin foreign on the WebSocket upgrade", 403, "cross-origin", upgrade().with("Origin", "http://evil.example")),
        attack("origin null on the WebSocket upgrade", 403, "cross-origin", upgrade().with("Origin", "null")),
        attack("origin scheme mismatch on the WebSocket upgrade", 403, "cross-origin", upgrade().with("Origin", &format!("https://{own}"))),
        attack("origin foreign on an odd Upgrade", 403, "cross-origin", get("/ws").with("Upgrade", "WebSocket, h2c").with("Origin", "http://evil.example")),
        // --- token --------------------------------------------------------------------------
        attack("token missing", 401, "token", get("/queue").no_token()),
        attack("token wrong", 401, "token", get("/queue").no_token().with("Authorization", "Bearer nope")),
        attack("token partial", 401, "token", get("/queue").no_token().with("Authorization", &format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]))),
        attack("token with a suffix", 401, "token", get("/queue").no_token().with("Authorization", &format!("Bearer {TOKEN}x"))),
        attack("token empty bearer", 401, "token", get("/queue").no_token().with("Authorization", "Bearer ")),
        attack("token as Basic credentials", 401, "token", get("/queue").no_token().with("Authorization", &format!("Basic {TOKEN}"))),
        attack("token in X-Api-Key", 401, "token", get("/queue").no_token().with("X-Api-Key", TOKEN)),
        attack("token in a cookie of another name", 401, "token", get("/queue").no_token().with("Cookie", &format!("token={TOKEN}"))),
        attack("token in the path", 401, "token", get(format!("/{TOKEN}/queue")).no_token()),
        attack("token in the JSON body", 401, "token", post("/prompt", json!({"token": TOKEN, "prompt": {}}).to_string()).no_token()),
        attack("token in another query parameter", 401, "token", get(format!("/queue?access_token={TOKEN}")).no_token()),
        attack("token missing on the WebSocket upgrade", 401, "token", upgrade().no_token()),
        attack("token as a WebSocket subprotocol", 401, "token", upgrade().no_token().with("Sec-WebSocket-Protocol", TOKEN)),
        // --- bodies -------------------------------------------------------------------------
        attack("malformed JSON", 400, "invalid json", post("/prompt", "{\"prompt\": {")),
        attack("JSON nested 100,000 deep", 400, "invalid json", post("/prompt", "[".repeat(100_000))),
        attack("non-UTF-8 body", 400, "invalid json", post("/prompt", b"\xff\xfe\x00{".to_vec())),
        attack("JSON that is not an object", 400, "must be a json object", post("/prompt", "[1,2]")),
        attack("prompt that is not a graph", 400, "", post("/prompt", "{\"prompt\": \"rm -rf /\"}")),
        attack("multipart without a boundary", 400, "", post("/upload/image", PNG.clone()).with("Content-Type", "multipart/form-data")),
        Attack { name: "declared Content-Length over 100 MB", status: 413, says: "too large",
            probe: Probe::Declared { head: post("/prompt", Vec::new()), declared: hundred_mb + 1 } },
        Attack { name: "POST /prompt streamed past 100 MB without Content-Length", status: 413, says: "too large",
            probe: Probe::Flood { head: post("/prompt", Vec::new()), prefix: b"{\"prompt\": \"".to_vec(), bytes: hundred_mb + 1024 * 1024 } },
        Attack { name: "upload streamed past 100 MB without Content-Length", status: 413, says: "too large",
            probe: Probe::Flood {
                head: post("/upload/image", Vec::new()).with("Content-Type", "multipart/form-data; boundary=----b"),
                prefix: flood_upload_prefix, bytes: hundred_mb + 1024 * 1024 } },
    ]
}

/// Streams a body of `bytes` zero-padded bytes in chunked coding while reading the answer.
async fn flood(addr: SocketAddr, head: &Req, prefix: &[u8], bytes: usize) -> Result<Reply, String> {
    let mut request = head.clone();
    request
        .headers
        .push(("Transfer-Encoding".into(), "chunked".into()));
    let head_bytes = request.bytes(addr);
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let prefix = prefix.to_vec();
    let sender = tokio::spawn(async move {
        writer.write_all(&head_bytes).await?;
        let chunk = vec![b'a'; 1024 * 1024];
        let mut first = format!("{:x}\r\n", prefix.len()).into_bytes();
        first.extend_from_slice(&prefix);
        first.extend_from_slice(b"\r\n");
        writer.write_all(&first).await?;
        let mut sent = prefix.len();
        while sent < bytes {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        writer.write_all(b"0\r\n\r\n").await?;
        Ok::<_, std::io::Error>(sent)
    });
    let answer = tokio::time::timeout(PATIENCE, read_reply(&mut reader))
        .await
        .map_err(|_| format!("no answer within {PATIENCE:?}"))?;
    sender.abort();
    answer
}

/// Sends the head with a huge declared length and a few bytes of body, then reads the answer.
async fn declared(addr: SocketAddr, head: &Req, length: usize) -> Result<Reply, String> {
    let mut request = head.clone();
    request
        .headers
        .push(("Content-Length".into(), length.to_string()));
    let mut bytes = request.bytes(addr);
    bytes.extend_from_slice(b"{\"prompt\": ");
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(&bytes)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let answer = tokio::time::timeout(PATIENCE, read_reply(&mut reader))
        .await
        .map_err(|_| format!("no answer within {PATIENCE:?}"))?;
    drop(writer);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_and_nothing_outside_is_touched() {
    let scene = Scene::new();
    let before = scene.snapshot();
    let s = start(&scene).await;
    let addr = s.addr;
    let table = attacks(&scene, addr.port());
    assert!(table.len() >= 25, "only {} attacks", table.len());

    let mut failures = Vec::new();
    for attack in &table {
        let reply = match &attack.probe {
            Probe::Http(req) => exchange(addr, &req.bytes(addr)).await,
            Probe::Flood {
                head,
                prefix,
                bytes,
            } => flood(addr, head, prefix, *bytes).await,
            Probe::Declared { head, declared: n } => declared(addr, head, *n).await,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e}", attack.name));
                continue;
            }
        };
        let text = reply.text();
        if reply.status != attack.status || !text.to_lowercase().contains(attack.says) {
            failures.push(format!(
                "{}: expected {} saying {:?}, got {} {text}",
                attack.name, attack.status, attack.says, reply.status
            ));
        }
        if text.contains(SECRET) {
            failures.push(format!("{}: the sentinel's secret was served", attack.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} attacks not refused as they should be:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );

    // Nothing was queued by the refused prompts, nothing stored by the refused uploads.
    let (_, queue) = authed_json(addr, "/prompt").await;
    assert_eq!(queue["exec_info"]["queue_remaining"], 0, "{queue}");
    let (_, history) = authed_json(addr, "/history").await;
    assert_eq!(history, json!({}));
    let stored = uploaded_files(&scene.data.join("input"));
    assert!(stored.is_empty(), "refused uploads left files: {stored:?}");
    assert_eq!(scene.snapshot(), before, "the sentinel folder changed");
    s.stop().await;
}

async fn authed_json(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let reply = exchange(addr, &get(path).bytes(addr))
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let json = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", reply.text()));
    (reply.status, json)
}

/// Regular files under `dir`, skipping the symlinks the scene placed there.
fn uploaded_files(dir: &Path) -> Vec<String> {
    let mut found = BTreeSet::new();
    walk_no_follow(dir, dir, &mut found);
    found.into_iter().collect()
}

fn walk_no_follow(dir: &Path, base: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            walk_no_follow(&path, base, found);
        } else {
            found.insert(path.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

/// The same shapes, sent legitimately, pass: the refusals above are for their reasons only.
#[tokio::test]
async fn the_legitimate_forms_of_those_requests_pass() {
    let scene = Scene::new();
    let before = scene.snapshot();
    let s = start(&scene).await;
    let addr = s.addr;
    let own = format!("http://{addr}");
    let send = |req: Req| async move {
        exchange(addr, &req.bytes(addr))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    };

    let r = send(view("filename=ok.png&subfolder=sub")).await;
    assert_eq!((r.status, r.body.as_slice()), (200, PNG.as_slice()));
    let r = send(post("/prompt", prompt_body()).with("Origin", &own)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(post("/queue", json!({"clear": true}).to_string()).with("Origin", &own)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(get("/queue").host(Some(&format!("localhost:{}", addr.port())))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(upgrade().with("Origin", &own)).await;
    assert_eq!(r.status, 101);
    // The token once in the query sets the cookie, which then suffices.
    let r = send(get(format!("/users?token={TOKEN}")).no_token()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = r.header("set-cookie").expect("a cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = send(get("/queue").no_token().with("Cookie", &pair)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Uploads: a folder in the file name is dropped (the file lands inside), a real image is kept.
    let r = send(upload(
        "../../sentinel/evil.png",
        &PNG,
        &[("subfolder", "pets")],
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(scene.data.join("input/pets/evil.png")).unwrap(),
        *PNG
    );
    assert_eq!(scene.snapshot(), before, "the sentinel folder changed");
    s.stop().await;
}

/// User files never run in the server's origin: `nosniff` on all, active content as attachments.
#[tokio::test]
async fn served_user_files_are_never_active_inline() {
    let scene = Scene::new();
    let s = start(&scene).await;
    let addr = s.addr;
    let cases = [
        ("ok.png&subfolder=sub", "inline", "image/png"),
        ("page.html", "attachment", ""),
        ("page.htm", "attachment", ""),
        ("page.xhtml", "attachment", ""),
        ("pic.svg", "attachment", ""),
        ("PIC.SVG", "attachment", ""),
        ("feed.xml", "attachment", ""),
        ("app.js", "attachment", ""),
        ("style.css", "attachment", ""),
        ("noext", "", "application/octet-stream"),
    ];
    for (query, disposition, content_type) in cases {
        let r = exchange(addr, &view(&format!("filename={query}")).bytes(addr))
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{query}"
        );
        let served_as = r.header("content-type").unwrap_or_default();
        for active in ["html", "svg", "xml", "javascript", "css"] {
            assert!(!served_as.contains(active), "{query} served as {served_as}");
        }
        if !content_type.is_empty() {
            assert_eq!(served_as, content_type, "{query}");
        }
        let given = r.header("content-disposition").unwrap_or_default();
        assert!(given.starts_with(disposition), "{query}: {given}");
    }
    s.stop().await;
}

/// Garbage on the WebSocket closes that socket at worst; the server and other sockets go on.
#[tokio::test]
async fn garbage_on_the_websocket_never_takes_the_server_down() {
    let scene = Scene::new();
    let s = start(&scene).await;
    let addr = s.addr;
    // Distinct client ids: a newer socket with the same id replaces the older one.
    let connect = |id: &'static str| async move {
        let mut request = format!("ws://{addr}/ws?clientId={id}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("socket connects");
        ws
    };
    // Malformed and unexpected messages are ignored: the socket still answers feature_flags.
    let mut ws = connect("junk").await;
    let hello = recv_text(&mut ws).await.expect("status first");
    assert_eq!(hello["type"], "status");
    for junk in [
        Message::Text("{not json".into()),
        Message::Text("[]".into()),
        Message::Text(json!({"type": 5, "data": null}).to_string().into()),
        Message::Text(
            json!({"type": "execute", "data": {"prompt": {}}})
                .to_string()
                .into(),
        ),
        Message::Binary(vec![0xff; 4096].into()),
        Message::Ping(vec![1, 2, 3].into()),
    ] {
        ws.send(junk).await.expect("send junk");
    }
    ws.send(Message::Text(
        json!({"type": "feature_flags", "data": {}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let reply = recv_text(&mut ws)
        .await
        .expect("feature_flags answered after junk");
    assert_eq!(reply["type"], "feature_flags", "{reply}");

    // A message over the limit closes that socket.
    let mut big = connect("big").await;
    recv_text(&mut big).await.expect("status first");
    let _ = big
        .send(Message::Text("x".repeat(1024 * 1024).into()))
        .await;
    assert!(
        closes(&mut big).await,
        "an oversized message did not close the socket"
    );

    // Raw bytes that are not WebSocket frames at all close that connection.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    raw.write_all(&upgrade().bytes(addr)).await.unwrap();
    let r = read_reply(&mut raw).await.expect("upgrade answer");
    assert_eq!(r.status, 101);
    raw.write_all(&[0xff; 64]).await.unwrap();
    let mut sink = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, raw.read_to_end(&mut sink)).await;
    assert!(ended.is_ok(), "garbage frames did not end the connection");

    // The first socket and the HTTP side still work.
    ws.send(Message::Text(
        json!({"type": "feature_flags", "data": {}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        recv_text(&mut ws).await.expect("still open")["type"],
        "feature_flags"
    );
    let (status, _) = authed_json(addr, "/system_stats").await;
    assert_eq!(status, 200);
    s.stop().await;
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// The next text message as JSON; `None` if the socket closes or nothing comes in time.
async fn recv_text(ws: &mut Ws) -> Option<serde_json::Value> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Whether the server closes the socket (within [`PATIENCE`]).
async fn closes(ws: &mut Ws) -> bool {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await {
            Err(_) => return false,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// A thousand idle or half-sent connections (slowloris) do not stop a normal client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_idle_connections_leave_the_server_answering() {
    let scene = Scene::new();
    let s = start(&scene).await;
    let addr = s.addr;
    let count = idle_connection_budget();
    assert!(
        count >= 200,
        "the open-file limit allows only {count} connections"
    );
    let mut idle = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = tokio::time::timeout(PATIENCE, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connection {i} not accepted within {PATIENCE:?}"))
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        if i % 2 == 1 {
            // Half a request head, never finished.
            stream
                .write_all(
                    format!("POST /prompt HTTP/1.1\r\nHost: {addr}\r\nContent-Le").as_bytes(),
                )
                .await
                .unwrap();
        }
        idle.push(stream);
    }
    let (status, answer) = authed_json(addr, "/prompt").await;
    assert_eq!(status, 200, "{answer}");
    let r = exchange(addr, &post("/prompt", prompt_body()).bytes(addr))
        .await
        .expect("queue a prompt");
    assert_eq!(r.status, 200, "{}", r.text());
    let id = serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["prompt_id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, entry) = authed_json(addr, &format!("/history/{id}")).await;
        if entry.get(&id).is_some() {
            assert_eq!(entry[&id]["status"]["status_str"], "success", "{entry}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the prompt did not finish with {count} idle connections open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(idle);
    s.stop().await;
}

/// Connections that never finish a request head are closed after the header-read timeout (so they
/// cannot pile up); a WebSocket session idle for longer stays open.
#[tokio::test]
async fn idle_and_slow_connections_are_closed_after_the_header_timeout() {
    let scene = Scene::new();
    let mut config = ServerConfig::new(&scene.data);
    config.token = Some(TOKEN.into());
    config.header_read_timeout = Duration::from_millis(300);
    let s = TestServer::start_with(config).await;
    let addr = s.addr;

    let mut socket = {
        let mut request = format!("ws://{addr}/ws?clientId=idle")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        tokio_tungstenite::connect_async(request)
            .await
            .expect("socket connects")
            .0
    };
    recv_text(&mut socket).await.expect("status first");

    let idle = TcpStream::connect(addr).await.unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /prompt HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let mut kept_alive = TcpStream::connect(addr).await.unwrap();
    kept_alive
        .write_all(&get("/prompt").keep_alive().bytes(addr))
        .await
        .unwrap();
    let answer = read_reply(&mut kept_alive).await.expect("an answer");
    assert_eq!(answer.status, 200);

    for (name, mut stream) in [("idle", idle), ("slow", slow), ("kept alive", kept_alive)] {
        let mut rest = Vec::new();
        let ended = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
        assert!(ended.is_ok(), "the {name} connection was not closed");
    }
    // The WebSocket, idle all that time, still answers.
    socket
        .send(Message::Text(
            json!({"type": "feature_flags", "data": {}})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        recv_text(&mut socket).await.expect("still open")["type"],
        "feature_flags"
    );
    s.stop().await;
}

/// A request whose head is complete but whose body stalls is answered (400) and its connection closed
/// after the body's idle timeout, so slow-body connections cannot pile up either; a body that keeps
/// coming, however slowly overall, is read to the end.
#[tokio::test]
async fn a_stalled_request_body_is_abandoned_after_the_body_timeout() {
    let scene = Scene::new();
    let mut config = ServerConfig::new(&scene.data);
    config.token = Some(TOKEN.into());
    config.body_idle_timeout = Duration::from_millis(300);
    let s = TestServer::start_with(config).await;
    let addr = s.addr;
    let body = prompt_body();

    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /prompt HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        addr.port(),
        body.len()
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(PATIENCE, stalled.read_to_end(&mut answer)).await;
    assert!(ended.is_ok(), "the stalled connection was not closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // The same body in small pieces, each well inside the timeout, is accepted.
    let mut trickle = TcpStream::connect(addr).await.unwrap();
    trickle.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(body.len().div_ceil(4)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trickle.write_all(piece).await.unwrap();
    }
    let reply = read_reply(&mut trickle).await.expect("an answer");
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    s.stop().await;
}
