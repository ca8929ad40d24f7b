//! A real server on a loopback port with small test nodes, and client helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omnigen_engine::{
    BoxFuture, CheckContext, Image, InputSpec, Inputs, NodeContext, NodeError, NodeOutput,
    NodeSchema, NodeType, Registry, Value,
};
use omnigen_server::{RunningServer, ServerConfig};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::Message;

/// How many times each test node ran.
#[derive(Default, Clone)]
pub struct Runs(pub Arc<AtomicUsize>);

impl Runs {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn record(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `Const {value: INT} -> INT`.
struct Const(Runs);
impl NodeType for Const {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Const")
            .required(InputSpec::int("value").default_int(0))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.record();
            Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)]))
        })
    }
}

/// `Show {value: INT}`: an output node whose UI is `{"value": [v]}`.
struct Show(Runs);
impl NodeType for Show {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Show")
            .output_node()
            .required(InputSpec::socket("value", "INT"))
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            self.0.record();
            let v = inputs.get_int("value")?;
            Ok(NodeOutput::ui(json!({"value": [v.to_string()]})))
        })
    }
}

/// `Slow {steps: INT, ms: INT}`: an output node that reports progress every `ms` for `steps` steps.
struct Slow;
impl NodeType for Slow {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Slow")
            .output_node()
            .required(InputSpec::int("steps").default_int(10).min(1).max(100_000))
            .required(InputSpec::int("ms").default_int(10).min(0).max(10_000))
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let steps = inputs.get_u64("steps")?;
            let ms = inputs.get_u64("ms")?;
            for step in 0..steps {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                ctx.progress(step + 1, steps)?;
            }
            Ok(NodeOutput::ui(json!({"steps": [steps.to_string()]})))
        })
    }
}

/// `SavePng`: an output node that writes a 2x2 PNG into the output folder carrying the prompt and every
/// `extra_pnginfo` entry as text chunks (what SaveImage does), and shows it as ComfyUI's `images` UI.
struct SavePng;
impl NodeType for SavePng {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("SavePng")
            .output_node()
            .required(InputSpec::string("filename_prefix").default_value("test"))
            .hidden("prompt", "PROMPT")
            .hidden("extra_pnginfo", "EXTRA_PNGINFO")
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let prefix = inputs.get_str("filename_prefix")?;
            let mut chunks = vec![("prompt".to_string(), ctx.prompt().to_string())];
            if let Some(Json::Object(extra)) = ctx.extra_pnginfo() {
                for (key, value) in extra {
                    chunks.push((key.clone(), value.to_string()));
                }
            }
            let name = format!("{prefix}_{}.png", ctx.prompt_id());
            let bytes = png_with_text(2, 2, [10, 20, 30, 255], &chunks);
            std::fs::write(ctx.dirs().output.join(&name), bytes)
                .map_err(|e| NodeError::new(format!("cannot write {name}: {e}")))?;
            Ok(NodeOutput::ui(
                json!({"images": [{"filename": name, "subfolder": "", "type": "output"}]}),
            ))
        })
    }
}

/// `Fail {message: STRING}`: an output node that always fails with that message.
struct Fail;
impl NodeType for Fail {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Fail")
            .output_node()
            .required(InputSpec::string("message").default_value("boom"))
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Err(NodeError::new(inputs.get_str("message")?)) })
    }
}

/// `PickFile {image: input file combo}`: an output node that names the input file it was given, which
/// must exist (as LoadImage checks).
struct PickFile;
impl NodeType for PickFile {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("PickFile")
            .output_node()
            .required(InputSpec::input_file("image", ["png"]).option("image_upload", true))
    }
    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        let name = inputs.get_str("image")?;
        if ctx.dirs.input.join(name).is_file() {
            Ok(())
        } else {
            Err(NodeError::input("image", format!("no file {name}")))
        }
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            Ok(NodeOutput::ui(
                json!({"picked": [inputs.get_str("image")?]}),
            ))
        })
    }
}

/// An RGBA PNG of one colour with these text chunks.
pub fn png_with_text(w: u32, h: u32, px: [u8; 4], chunks: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, w, h);
        encoder.set_color(png::ColorType::Rgba);
        encoder.set_depth(png::BitDepth::Eight);
        for (keyword, text) in chunks {
            encoder
                .add_itxt_chunk(keyword.clone(), text.clone())
                .unwrap();
        }
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = (0..w * h).flat_map(|_| px).collect();
        writer.write_image_data(&pixels).unwrap();
    }
    out
}

/// An RGBA PNG of one colour.
pub fn png(w: u32, h: u32, px: [u8; 4]) -> Vec<u8> {
    png_with_text(w, h, px, &[])
}

/// The text chunks of a PNG (tEXt, zTXt, iTXt) as `(keyword, text)`.
pub fn png_text(bytes: &[u8]) -> Vec<(String, String)> {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let info = reader.info();
    let mut chunks: Vec<(String, String)> = info
        .uncompressed_latin1_text
        .iter()
        .map(|c| (c.keyword.clone(), c.text.clone()))
        .collect();
    for c in &info.compressed_latin1_text {
        chunks.push((c.keyword.clone(), c.get_text().unwrap()));
    }
    for c in &info.utf8_text {
        chunks.push((c.keyword.clone(), c.get_text().unwrap()));
    }
    chunks
}

/// `Previews {steps: INT, ms: INT, side: INT}`: an output node that reports `steps` steps, each with a
/// preview `side` pixels high and `side + step` wide (so a decoded preview tells which step made it),
/// waiting `ms` before each.
struct Previews;
impl NodeType for Previews {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Previews")
            .output_node()
            .required(InputSpec::int("steps").default_int(3).min(1).max(10_000))
            .required(InputSpec::int("ms").default_int(10).min(0).max(10_000))
            .required(InputSpec::int("side").default_int(8).min(1).max(4096))
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let steps = inputs.get_u64("steps")?;
            let ms = inputs.get_u64("ms")?;
            let side = inputs.get_u64("side")? as usize;
            for step in 1..=steps {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let shade = (step % 256) as u8;
                let width = side + step as usize;
                let pixels: Vec<u8> = (0..side * width)
                    .flat_map(|i| [shade, (i % 251) as u8, 200])
                    .collect();
                let image = Image::from_bytes(1, side, width, 3, pixels)
                    .map_err(|e| NodeError::new(e.to_string()))?;
                ctx.progress_with_preview(step, steps, Some(Arc::new(image)))?;
            }
            Ok(NodeOutput::ui(json!({"steps": [steps.to_string()]})))
        })
    }
}

/// A registry of the test nodes, and their run counters.
pub fn registry() -> (Arc<Registry>, Runs, Runs) {
    let registry = Arc::new(Registry::new());
    let consts = Runs::default();
    let shows = Runs::default();
    registry.register(Const(consts.clone()));
    registry.register(Show(shows.clone()));
    registry.register(Slow);
    registry.register(Previews);
    registry.register(SavePng);
    registry.register(Fail);
    registry.register(PickFile);
    (registry, consts, shows)
}

/// A started server and a client for it.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub consts: Runs,
    pub shows: Runs,
}

impl TestServer {
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(ServerConfig::new(data_dir)).await
    }

    pub async fn start_with(mut config: ServerConfig) -> Self {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (registry, consts, shows) = registry();
        let server = omnigen_server::start(config, registry)
            .await
            .expect("server starts");
        TestServer {
            addr: server.local_addr(),
            server: Some(server),
            http: reqwest::Client::new(),
            consts,
            shows,
        }
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Json) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        status_json(r).await
    }

    pub async fn post(&self, path: &str, body: Json) -> (u16, Json) {
        let r = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        status_json(r).await
    }

    /// Queues a graph; returns the prompt id.
    pub async fn queue(&self, body: Json) -> String {
        let (status, answer) = self.post("/prompt", body).await;
        assert_eq!(status, 200, "{answer}");
        answer["prompt_id"].as_str().unwrap().to_string()
    }

    /// Waits until the prompt is in history; returns its entry.
    pub async fn finished(&self, id: &str) -> Json {
        for _ in 0..500 {
            let (_, h) = self.get(&format!("/history/{id}")).await;
            if let Some(entry) = h.get(id) {
                return entry.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("prompt {id} did not finish");
    }

    /// Waits until the prompt is running.
    pub async fn running(&self, id: &str) {
        for _ in 0..500 {
            let (_, q) = self.get("/queue").await;
            if q["queue_running"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item[1] == id)
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("prompt {id} did not start");
    }

    pub async fn socket(&self, client_id: &str) -> Socket {
        let url = format!("ws://{}/ws?clientId={client_id}", self.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("socket connects");
        Socket(ws)
    }
}

pub async fn status_json(r: reqwest::Response) -> (u16, Json) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Json::String(text)),
    )
}

/// `Const(value) -> Show`, for client `client`.
pub fn graph(value: i64, client: &str) -> Json {
    json!({
        "prompt": {
            "1": {"class_type": "Const", "inputs": {"value": value}},
            "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}
        },
        "client_id": client
    })
}

/// One `Slow` node running `steps` × `ms`.
pub fn slow(steps: u64, ms: u64) -> Json {
    json!({"prompt": {"1": {"class_type": "Slow", "inputs": {"steps": steps, "ms": ms}}}})
}

/// `n` nodes: `n / 2` independent `Const -> Show` pairs (ComfyUI's benchmark "wide" graph), for `client`.
pub fn wide(n: usize, seed: i64, client: &str) -> Json {
    let mut prompt = serde_json::Map::new();
    for k in 0..n / 2 {
        let (c, s) = ((2 * k + 1).to_string(), (2 * k + 2).to_string());
        prompt.insert(
            c.clone(),
            json!({"class_type": "Const", "inputs": {"value": seed * 1_000_000 + k as i64}}),
        );
        prompt.insert(
            s,
            json!({"class_type": "Show", "inputs": {"value": [c, 0]}}),
        );
    }
    json!({"prompt": prompt, "client_id": client})
}

/// One frame from the server.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A text message, parsed, and its length in bytes.
    Text(Json, usize),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Frame {
    /// Bytes on the wire (the payload).
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(_, n) => *n,
            Frame::Binary(b) => b.len(),
        }
    }

    pub fn text(&self) -> Option<&Json> {
        match self {
            Frame::Text(m, _) => Some(m),
            Frame::Binary(_) => None,
        }
    }

    /// Whether this is `executing {node: null}` of `prompt_id`.
    pub fn is_done(&self, prompt_id: &str) -> bool {
        self.text().is_some_and(|m| {
            m["type"] == "executing"
                && m["data"]["node"].is_null()
                && m["data"]["prompt_id"] == prompt_id
        })
    }
}

pub struct Socket(
    pub tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl Socket {
    /// The next text message, or `None` if nothing comes within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Json> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(wait, self.0.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    pub async fn next(&mut self) -> Json {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a message")
    }

    /// Messages up to and including `executing {node: null}` of `prompt_id`.
    pub async fn until_done(&mut self, prompt_id: &str) -> Vec<Json> {
        let mut seen = Vec::new();
        loop {
            let m = self.next().await;
            let done = m["type"] == "executing"
                && m["data"]["node"].is_null()
                && m["data"]["prompt_id"] == prompt_id;
            seen.push(m);
            if done {
                return seen;
            }
        }
    }

    /// The next text or binary frame, or `None` if nothing comes within `wait`.
    pub async fn frame_within(&mut self, wait: Duration) -> Option<Frame> {
        use futures_util::StreamExt;
        loop {
            match tokio::time::timeout(wait, self.0.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let json = serde_json::from_str(t.as_str()).expect("text frames are JSON");
                    return Some(Frame::Text(json, t.len()));
                }
                Ok(Some(Ok(Message::Binary(b)))) => return Some(Frame::Binary(b.to_vec())),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// Every frame up to and including `executing {node: null}` of `prompt_id`.
    pub async fn frames_until_done(&mut self, prompt_id: &str) -> Vec<Frame> {
        let mut seen = Vec::new();
        loop {
            let frame = self
                .frame_within(Duration::from_secs(10))
                .await
                .expect("a frame");
            let done = frame.is_done(prompt_id);
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }

    /// Every frame that comes until the socket is quiet for `quiet`.
    pub async fn frames_until_quiet(&mut self, quiet: Duration) -> Vec<Frame> {
        let mut seen = Vec::new();
        while let Some(frame) = self.frame_within(quiet).await {
            seen.push(frame);
        }
        seen
    }

    pub async fn send(&mut self, text: &str) {
        use futures_util::SinkExt;
        self.0.send(Message::Text(text.into())).await.unwrap();
    }
}

pub fn types(messages: &[Json]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["type"].as_str().unwrap_or("?"))
        .collect()
}
