//! `cargo bench -p omnigen-server --bench server`: the server measured over real loopback HTTP and
//! WebSocket connections, on trivial integer nodes, as ComfyUI's own server benchmark
//! (`shared/bench/comfyui/bench_http.py`, `bench_nodes.py`, `graphs.py`) measures ComfyUI:
//!
//! - `POST /prompt` of a small graph (parse, validate, enqueue), round trip;
//! - a 1,000-node wide graph (500 constant -> sink pairs) and a 500-node chain end to end over the
//!   WebSocket: from sending the POST to seeing `executing {node: null}`, with the WebSocket bytes;
//! - the wide graph with 49 more WebSocket clients connected (50 watching) against one;
//! - resident memory across 1,000 queued prompts with history bounded to 100 entries.
//!
//! `--quick` takes fewer samples; `--only PART…` runs some parts (`memory`, `post`, `wide`, `chain`,
//! `watchers`). Results go to stdout as a table; see BENCHMARKS.md ("Server").

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use omnigen_engine::{
    BoxFuture, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType,
    Registry, Value,
};
use omnigen_server::{HistoryLimits, RunningServer, ServerConfig};
use serde_json::{json, Map, Value as Json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const INT_RANGE: i64 = 1 << 62;

fn int_input(name: &str) -> InputSpec {
    InputSpec::int(name)
        .default_int(0)
        .min(-INT_RANGE)
        .max(INT_RANGE)
}

/// `BenchIntConst {value} -> INT`.
struct Const;
impl NodeType for Const {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("BenchIntConst")
            .required(int_input("value"))
            .output("INT")
    }
    fn run<'a>(&'a self, inputs: Inputs, _: NodeContext) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move { Ok(NodeOutput::new(vec![Value::Int(inputs.get_int("value")?)])) })
    }
}

/// `BenchIntAdd {a, b} -> INT`.
struct Add;
impl NodeType for Add {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("BenchIntAdd")
            .required(int_input("a"))
            .required(int_input("b"))
            .output("INT")
    }
    fn run<'a>(&'a self, inputs: Inputs, _: NodeContext) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move {
            let sum = inputs.get_int("a")?.wrapping_add(inputs.get_int("b")?);
            Ok(NodeOutput::new(vec![Value::Int(sum)]))
        })
    }
}

/// `BenchIntSink {value}`: an output node whose UI is `{"value": [v]}`.
struct Sink;
impl NodeType for Sink {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("BenchIntSink")
            .output_node()
            .required(int_input("value"))
    }
    fn run<'a>(&'a self, inputs: Inputs, _: NodeContext) -> BoxFuture<'a, NodeResult> {
        Box::pin(async move { Ok(NodeOutput::ui(json!({"value": [inputs.get_int("value")?]}))) })
    }
}

type NodeResult = Result<NodeOutput, NodeError>;

fn registry() -> Arc<Registry> {
    let registry = Arc::new(Registry::new());
    registry.register(Const);
    registry.register(Add);
    registry.register(Sink);
    registry
}

/// Const -> Add -> … -> Sink: `n` nodes (graphs.py `chain`).
fn chain(n: usize, seed: i64) -> Json {
    let mut p = Map::new();
    p.insert(
        "1".into(),
        json!({"class_type": "BenchIntConst", "inputs": {"value": seed}}),
    );
    for i in 2..n {
        p.insert(
            i.to_string(),
            json!({"class_type": "BenchIntAdd", "inputs": {"a": [(i - 1).to_string(), 0], "b": 1}}),
        );
    }
    p.insert(
        n.to_string(),
        json!({"class_type": "BenchIntSink", "inputs": {"value": [(n - 1).to_string(), 0]}}),
    );
    Json::Object(p)
}

/// `n / 2` independent Const -> Sink pairs (graphs.py `wide`).
fn wide(n: usize, seed: i64) -> Json {
    let mut p = Map::new();
    for k in 0..n / 2 {
        let (c, s) = ((2 * k + 1).to_string(), (2 * k + 2).to_string());
        p.insert(
            c.clone(),
            json!({"class_type": "BenchIntConst", "inputs": {"value": seed * 1_000_000 + k as i64}}),
        );
        p.insert(
            s,
            json!({"class_type": "BenchIntSink", "inputs": {"value": [c, 0]}}),
        );
    }
    Json::Object(p)
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The parts of a server message the bench reads.
#[derive(serde::Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    data: HeadData<'a>,
}

#[derive(serde::Deserialize)]
struct HeadData<'a> {
    #[serde(borrow, default)]
    prompt_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    node: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<u64>,
}

struct Bench {
    addr: SocketAddr,
    http: reqwest::Client,
}

/// One prompt, end to end.
#[derive(Debug, Clone, Copy)]
struct Sample {
    post: Duration,
    total: Duration,
    ws_bytes: usize,
    ws_messages: usize,
    /// `execution_start` to `execution_success`, by the server's own millisecond stamps.
    exec_ms: u64,
    /// CPU time the whole process (server and client) spent meanwhile.
    cpu: Duration,
}

impl Bench {
    async fn start(config: ServerConfig) -> (Self, RunningServer) {
        let mut config = config;
        config.listen = "127.0.0.1:0".parse().expect("an address");
        let server = omnigen_server::start(config, registry())
            .await
            .expect("the server starts");
        let bench = Bench {
            addr: server.local_addr(),
            http: reqwest::Client::new(),
        };
        (bench, server)
    }

    async fn socket(&self, client_id: &str) -> Ws {
        let url = format!("ws://{}/ws?clientId={client_id}", self.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the socket connects");
        let hello = ws.next().await.expect("a hello").expect("a hello");
        assert!(hello.is_text());
        ws
    }

    /// POSTs a prompt; its id and the round trip.
    async fn post(&self, prompt: &Json, client_id: Option<&str>) -> (String, Duration) {
        let mut body = json!({"prompt": prompt});
        if let Some(c) = client_id {
            body["client_id"] = json!(c);
        }
        let body = body.to_string();
        let t0 = Instant::now();
        let response = self
            .http
            .post(format!("http://{}/prompt", self.addr))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /prompt");
        let status = response.status();
        let answer = json_of(response).await;
        let took = t0.elapsed();
        assert!(status.is_success(), "{status}: {answer}");
        let id = answer["prompt_id"]
            .as_str()
            .expect("a prompt id")
            .to_string();
        (id, took)
    }

    /// POSTs `prompt` for the client of `ws` and reads until its `executing {node: null}`.
    async fn run(&self, ws: &mut Ws, client_id: &str, prompt: &Json) -> Sample {
        let cpu0 = cpu_time();
        let t0 = Instant::now();
        let (id, post) = self.post(prompt, Some(client_id)).await;
        let (mut ws_bytes, mut ws_messages) = (0, 0);
        let (mut start, mut success) = (0, 0);
        loop {
            let message = ws
                .next()
                .await
                .expect("the socket stays open")
                .expect("a frame");
            let Message::Text(text) = message else {
                continue;
            };
            ws_bytes += text.len();
            ws_messages += 1;
            // Read as a lean client does: the type, the prompt and what this loop needs, borrowed.
            let m: Head<'_> = serde_json::from_str(text.as_str()).expect("a JSON message");
            if m.data.prompt_id.as_deref() != Some(id.as_str()) {
                continue;
            }
            match &*m.kind {
                "execution_start" => start = m.data.timestamp.unwrap_or(0),
                "execution_success" => success = m.data.timestamp.unwrap_or(0),
                "execution_error" => panic!("the prompt failed: {}", text.as_str()),
                "executing" if m.data.node.is_none() => break,
                _ => {}
            }
        }
        Sample {
            post,
            total: t0.elapsed(),
            cpu: cpu_time().saturating_sub(cpu0),
            ws_bytes,
            ws_messages,
            exec_ms: success.saturating_sub(start),
        }
    }

    /// Waits until nothing is queued or running.
    async fn drained(&self) {
        loop {
            let response = self
                .http
                .get(format!("http://{}/prompt", self.addr))
                .send()
                .await
                .expect("GET /prompt");
            let answer = json_of(response).await;
            if answer["exec_info"]["queue_remaining"] == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn json_of(response: reqwest::Response) -> Json {
    let text = response.text().await.expect("a body");
    serde_json::from_str(&text).expect("a JSON body")
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn percentile(mut values: Vec<Duration>, p: f64) -> Duration {
    values.sort();
    let at = ((values.len() - 1) as f64 * p).round() as usize;
    values[at]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// The process's resident memory in MiB (Linux), or 0.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time of every thread of this process so far (Linux `schedstat`, nanoseconds), or zero.
fn cpu_time() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(ns)
}

/// Runs `reps` fresh (cache-missing) prompts of `graph(n, seed)` and as many cached re-runs.
async fn end_to_end(
    bench: &Bench,
    ws: &mut Ws,
    client: &str,
    graph: fn(usize, i64) -> Json,
    n: usize,
    reps: usize,
    seed: &mut i64,
) -> (Vec<Sample>, Vec<Sample>) {
    let (mut first, mut cached) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        *seed += 1;
        let prompt = graph(n, *seed);
        first.push(bench.run(ws, client, &prompt).await);
        cached.push(bench.run(ws, client, &prompt).await);
    }
    (first, cached)
}

fn report_e2e(name: &str, first: &[Sample], cached: &[Sample]) {
    let totals = |s: &[Sample]| s.iter().map(|x| x.total).collect::<Vec<_>>();
    let exec = median(
        first
            .iter()
            .map(|x| Duration::from_millis(x.exec_ms))
            .collect(),
    );
    let bytes = first.iter().map(|x| x.ws_bytes).max().unwrap_or(0);
    let messages = first.iter().map(|x| x.ws_messages).max().unwrap_or(0);
    println!(
        "{name}: end to end median {} (p10 {}, p90 {}; {} runs), of which execution {}; POST {}; \
         CPU {}; {messages} WS messages, {:.3} MB; cached re-run median {} ({:.3} MB)",
        ms(median(totals(first))),
        ms(percentile(totals(first), 0.1)),
        ms(percentile(totals(first), 0.9)),
        first.len(),
        ms(exec),
        ms(median(first.iter().map(|x| x.post).collect())),
        ms(median(first.iter().map(|x| x.cpu).collect())),
        bytes as f64 / 1e6,
        ms(median(totals(cached))),
        cached.iter().map(|x| x.ws_bytes).max().unwrap_or(0) as f64 / 1e6,
    );
}

/// The CPU 49 more sockets cost per prompt (each gets two `status` broadcasts): small prompts, 200 with
/// one client against 200 with 49 more, reading or not.
async fn broadcast_cost(bench: &Bench, ws: &mut Ws, seed: &mut i64) {
    const PROMPTS: u32 = 200;
    let mut cpu_of_prompts = async |ws: &mut Ws| {
        let c0 = cpu_time();
        for _ in 0..PROMPTS {
            *seed += 1;
            bench.run(ws, "bench", &chain(3, *seed)).await;
        }
        cpu_time().saturating_sub(c0) / PROMPTS
    };
    let (mut read_extra, mut hold_extra) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        for reading in [true, false] {
            let alone = cpu_of_prompts(ws).await;
            let others = Watchers::start(bench, 49, reading).await;
            let with = cpu_of_prompts(ws).await;
            drop(others);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let more = with.saturating_sub(alone);
            if reading {
                read_extra.push(more);
            } else {
                hold_extra.push(more);
            }
        }
    }
    println!(
        "  49 more sockets, CPU per small prompt (2 status broadcasts): {} with the clients reading, \
         {} for the server alone (clients not reading)",
        ms(median(read_extra)),
        ms(median(hold_extra)),
    );
}

/// Keeps `count` extra sockets connected and reading, until dropped.
struct Watchers(Vec<tokio::task::JoinHandle<()>>);

impl Watchers {
    /// Sockets that read every frame.
    async fn connect(bench: &Bench, count: usize) -> Self {
        Self::start(bench, count, true).await
    }

    /// Sockets that read (`reading`) or only hold their connection, so that the CPU the server spends
    /// on them can be told from the CPU of the clients in this process.
    async fn start(bench: &Bench, count: usize, reading: bool) -> Self {
        let mut tasks = Vec::new();
        for i in 0..count {
            let mut ws = bench.socket(&format!("watcher{i}")).await;
            tasks.push(tokio::spawn(async move {
                if reading {
                    while let Some(Ok(_)) = ws.next().await {}
                } else {
                    std::future::pending::<()>().await;
                    drop(ws);
                }
            }));
        }
        Watchers(tasks)
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// (e) Resident memory across 1,000 queued prompts, history bounded to 100 entries. Runs first, in a
/// fresh process, so no earlier measurement's memory hides growth.
async fn memory(seed: &mut i64) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = ServerConfig::new(dir.path());
    config.history = HistoryLimits {
        max_entries: 100,
        ..HistoryLimits::default()
    };
    config.prune_every = Duration::from_millis(100);
    let (bench, server) = Bench::start(config).await;
    let mut samples = vec![format!("start {:.1} MiB", rss_mib())];
    for round in 1..=5 {
        for _ in 0..200 {
            *seed += 1;
            bench.post(&chain(3, *seed), None).await;
        }
        bench.drained().await;
        tokio::time::sleep(Duration::from_millis(300)).await; // two prune ticks
        let response = bench
            .http
            .get(format!("http://{}/history", bench.addr))
            .send()
            .await
            .expect("GET /history");
        let history = json_of(response).await;
        let kept = history.as_object().map_or(0, Map::len);
        samples.push(format!(
            "after {} prompts {:.1} MiB ({kept} in history)",
            round * 200,
            rss_mib()
        ));
    }
    println!(
        "RSS, 1,000 prompts queued 200 at a time: {}",
        samples.join("; ")
    );
    server.shutdown().await;
}

/// Which parts to run: all, or those named after `--only` (`memory`, `post`, `wide`, `chain`,
/// `watchers`).
struct Parts(Vec<String>);

impl Parts {
    fn wants(&self, part: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p == part)
    }
}

async fn bench_main(quick: bool, parts: Parts) {
    let reps = if quick { 5 } else { 21 };
    let mut seed = 0;
    if parts.wants("memory") {
        memory(&mut seed).await;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let (bench, server) = Bench::start(ServerConfig::new(dir.path())).await;
    let mut ws = bench.socket("bench").await;

    // Warm up: every route and the executor once.
    for _ in 0..3 {
        seed += 1;
        bench.run(&mut ws, "bench", &chain(20, seed)).await;
    }

    if parts.wants("post") {
        post_small(&bench, &mut ws, quick, &mut seed).await;
    }
    if parts.wants("wide") {
        let (first, cached) =
            end_to_end(&bench, &mut ws, "bench", wide, 1000, reps, &mut seed).await;
        report_e2e("wide 1,000", &first, &cached);
    }
    if parts.wants("chain") {
        let (first, cached) =
            end_to_end(&bench, &mut ws, "bench", chain, 500, reps, &mut seed).await;
        report_e2e("chain 500", &first, &cached);
        let (first, cached) =
            end_to_end(&bench, &mut ws, "bench", chain, 1000, reps, &mut seed).await;
        report_e2e("chain 1,000", &first, &cached);
    }
    if parts.wants("watchers") {
        watchers(&bench, &mut ws, quick, &mut seed).await;
        broadcast_cost(&bench, &mut ws, &mut seed).await;
    }
    drop(ws);
    server.shutdown().await;
}

/// (a) `POST /prompt` of a small graph, with the worker idle.
async fn post_small(bench: &Bench, ws: &mut Ws, quick: bool, seed: &mut i64) {
    let mut posts = Vec::new();
    for _ in 0..(if quick { 50 } else { 300 }) {
        *seed += 1;
        posts.push(bench.run(ws, "bench", &chain(3, *seed)).await.post);
    }
    println!(
        "POST /prompt, 3-node chain: median {} (p10 {}, p90 {}; {} posts)",
        ms(median(posts.clone())),
        ms(percentile(posts.clone(), 0.1)),
        ms(percentile(posts.clone(), 0.9)),
        posts.len()
    );
}

/// (d) 49 more clients connected while one runs the wide graph, against that one alone. The machine's
/// load drifts, so the two alternate in short rounds and each round gives one ratio of medians.
async fn watchers(bench: &Bench, ws: &mut Ws, quick: bool, seed: &mut i64) {
    const PER_ROUND: usize = 3;
    let (mut alone, mut watched, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut alone_cpu, mut watched_cpu) = (Vec::new(), Vec::new());
    for round in 0..(if quick { 4 } else { 40 }) {
        // A, B then B, A: a drift of the machine's load within a round weighs on both sides.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut medians = [Duration::ZERO; 2];
        for with_others in order {
            let others = if with_others {
                Some(Watchers::connect(bench, 49).await)
            } else {
                None
            };
            let mut taken = Vec::new();
            for _ in 0..PER_ROUND {
                *seed += 1;
                let sample = bench.run(ws, "bench", &wide(1000, *seed)).await;
                taken.push(sample.total);
                let (all, cpu) = if with_others {
                    (&mut watched, &mut watched_cpu)
                } else {
                    (&mut alone, &mut alone_cpu)
                };
                all.push(sample.total);
                cpu.push(sample.cpu);
            }
            medians[usize::from(with_others)] = median(taken);
            if let Some(others) = others {
                drop(others);
                tokio::time::sleep(Duration::from_millis(50)).await; // let the 49 sockets close
            }
        }
        ratios.push(medians[1].as_secs_f64() / medians[0].as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    println!(
        "wide 1,000 with 1 client: median {} ({} runs); with 50 clients: median {} ({} runs); \
         median of {} paired rounds: {:+.1} % (rounds from {:+.1} % to {:+.1} %)",
        ms(median(alone.clone())),
        alone.len(),
        ms(median(watched.clone())),
        watched.len(),
        ratios.len(),
        (ratio - 1.0) * 100.0,
        (ratios[0] - 1.0) * 100.0,
        (ratios[ratios.len() - 1] - 1.0) * 100.0,
    );
    let (a, w) = (median(alone_cpu), median(watched_cpu));
    println!(
        "  CPU per run (server + all clients): 1 client {}, 50 clients {}: {:+.1} %",
        ms(a),
        ms(w),
        (w.as_secs_f64() / a.as_secs_f64() - 1.0) * 100.0
    );
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let parts = Parts(
        args.iter()
            .skip_while(|a| *a != "--only")
            .skip(1)
            .take_while(|a| !a.starts_with("--"))
            .cloned()
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "omnigen-server bench: {} CPUs available",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    runtime.block_on(bench_main(quick, parts));
}
