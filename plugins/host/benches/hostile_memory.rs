//! The host's peak memory under each hostile plugin and plugin folder. Run with
//! `cargo bench -p omnigen-plugins --bench hostile_memory`; results go into BENCHMARKS.md.
//!
//! Each attack runs in a fresh child process (this same binary, given the attack's name), which
//! sets everything up, resets the kernel's peak-RSS mark (`/proc/self/clear_refs`), runs the
//! attack, and prints its RSS before and its peak RSS during the attack (`VmHWM`). Guest linear
//! memory lives in this process too, so the peak includes what the plugin touched.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use omnigen_engine::{
    BoxFuture, Event, EventSink, Executor, ExecutorConfig, InputSpec, Inputs, NodeContext,
    NodeError, NodeOutput, NodeSchema, NodeType, PromptRequest, Registry, RunOptions,
};

/// An output node that takes an image and keeps nothing (graphs need an output to run).
struct Sink;
impl NodeType for Sink {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Sink")
            .required(InputSpec::socket("images", "IMAGE"))
            .output_node()
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let image = inputs.get_image("images")?;
            Ok(NodeOutput::ui(json!({"bytes": image.size_bytes()})))
        })
    }
}
use omnigen_plugins::{
    guest, register_dir, sha256_hex, CallControl, LimitRequest, Limits, LoadedPlugin, Manifest,
    PixelFormat, PixelImage, PluginConfig, PluginRuntime, PluginValue, ABI_VERSION,
};
use serde_json::{json, Map};

const ATTACKS: &[&str] = &[
    "idle",
    "log_huge",
    "log_spam",
    "fail_huge",
    "bad_output_name",
    "big_text",
    "hog",
    "oversized",
    "progress_flood",
    "bad_folders",
    "describe_hang_x4",
    "largest_rgba_round_trip",
    "largest_gray_output",
];

fn wasm_dir() -> PathBuf {
    let target = std::env::var_os("OMNIGEN_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-target"));
    guest::build_guests(&target).unwrap_or_else(|e| panic!("{e}"))
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn manifest(name: &str, bytes: &[u8], limits: LimitRequest) -> Manifest {
    Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        abi: ABI_VERSION.into(),
        wasm: format!("{name}.wasm"),
        sha256: sha256_hex(bytes),
        limits,
    }
}

fn install(dir: &Path, name: &str, bytes: &[u8], limits: LimitRequest) {
    let m = manifest(name, bytes, limits);
    std::fs::write(dir.join(&m.wasm), bytes).unwrap();
    std::fs::write(dir.join(format!("{name}.plugin.json")), m.to_json()).unwrap();
}

/// Room for the largest legal image (and a new one made from it) in guest memory.
fn big_config() -> PluginConfig {
    PluginConfig {
        default_limits: Limits {
            memory_bytes: 320 << 20,
            ..Limits::default()
        },
        max_memory_bytes: 1 << 30,
        max_concurrent_calls: 4,
        ..PluginConfig::default()
    }
}

/// Sets up `attack` and returns it, ready to run.
fn prepare(attack: &str, wasm: &Path) -> Box<dyn FnOnce() -> String> {
    let hostile_bytes = std::fs::read(wasm.join("omnigen_plugin_hostile.wasm")).unwrap();
    let runtime = PluginRuntime::new(PluginConfig::default()).unwrap();
    let load = |runtime: &PluginRuntime, name: &str, bytes: &[u8]| {
        LoadedPlugin::from_bytes(
            runtime,
            manifest(name, bytes, LimitRequest::default()),
            Path::new("x.plugin.json"),
            bytes,
        )
        .unwrap()
    };
    match attack {
        "idle" => Box::new(|| "nothing".into()),
        "log_huge" | "log_spam" | "fail_huge" | "bad_output_name" | "big_text" | "hog"
        | "oversized" => {
            let plugin = load(&runtime, "hostile", &hostile_bytes);
            let node = attack.to_string();
            Box::new(move || {
                match plugin.run(&node, vec![], &Map::new(), &CallControl::default()) {
                    Ok(out) => format!(
                        "ok, {} log lines kept ({} bytes), {} dropped",
                        out.log.len(),
                        out.log.iter().map(|l| l.message.len()).sum::<usize>(),
                        out.dropped_logs
                    ),
                    Err(e) => {
                        let text = e.to_string();
                        format!(
                            "{} bytes of error: {}",
                            text.len(),
                            &text[..text.len().min(90)]
                        )
                    }
                }
            })
        }
        "progress_flood" => {
            let dir = tempfile::tempdir().unwrap();
            install(
                dir.path(),
                "hostile",
                &hostile_bytes,
                LimitRequest::default(),
            );
            let registry = Arc::new(Registry::new());
            registry.register(Sink);
            let (host, _) = register_dir(&registry, dir.path(), &PluginConfig::default()).unwrap();
            let executor = Executor::new(registry, ExecutorConfig::default());
            Box::new(move || {
                let (events, bytes) =
                    (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
                let sink = {
                    let (events, bytes) = (Arc::clone(&events), Arc::clone(&bytes));
                    EventSink::from_fn(move |e: Event| {
                        if e.type_name() == "progress" {
                            events.fetch_add(1, Ordering::Relaxed);
                            let line = serde_json::to_string(&e).unwrap_or_default();
                            bytes.fetch_add(line.len() + 1, Ordering::Relaxed);
                        }
                    })
                };
                let graph = json!({"prompt": {"1": {"class_type": "hostile/progress_flood", "inputs": {}},
                                     "2": {"class_type": "Sink", "inputs": {"images": ["1", 0]}}}});
                let request = PromptRequest::from_json(graph).unwrap();
                let rt = tokio::runtime::Runtime::new().unwrap();
                let start = Instant::now();
                let report = rt
                    .block_on(executor.run(&request, RunOptions::new(sink)))
                    .unwrap();
                drop((host, dir));
                format!(
                    "{} in {:?}: {} progress events, {} bytes of JSON lines for 100,001 reports",
                    if report.is_success() { "ok" } else { "failed" },
                    start.elapsed(),
                    events.load(Ordering::Relaxed),
                    bytes.load(Ordering::Relaxed)
                )
            })
        }
        "bad_folders" => {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_path_buf();
            let write = |name: &str, wasm: &str| {
                let text = json!({"name": name, "version": "0", "abi": ABI_VERSION, "wasm": wasm, "sha256": "00".repeat(32)});
                std::fs::write(d.join(format!("{name}.plugin.json")), text.to_string()).unwrap();
            };
            write("zero", "/dev/zero");
            std::os::unix::fs::symlink("/dev/zero", d.join("link.wasm")).unwrap();
            write("link", "link.wasm");
            std::os::unix::fs::symlink("/dev/zero", d.join("endless.plugin.json")).unwrap();
            let status = std::process::Command::new("mkfifo")
                .arg(d.join("pipe.wasm"))
                .status()
                .unwrap();
            assert!(status.success());
            write("pipe", "pipe.wasm");
            std::fs::File::create(d.join("huge.wasm"))
                .unwrap()
                .set_len(8 << 30)
                .unwrap();
            write("huge", "huge.wasm");
            Box::new(move || {
                let start = Instant::now();
                let (_host, report) =
                    register_dir(&Registry::new(), &d, &PluginConfig::default()).unwrap();
                drop(dir);
                format!("{} refused in {:?}", report.failed.len(), start.elapsed())
            })
        }
        "describe_hang_x4" => {
            let bytes = std::fs::read(wasm.join("omnigen_plugin_describe_hang.wasm")).unwrap();
            let dir = tempfile::tempdir().unwrap();
            for i in 0..4 {
                install(
                    dir.path(),
                    &format!("hang{i}"),
                    &bytes,
                    LimitRequest::default(),
                );
            }
            Box::new(move || {
                let start = Instant::now();
                let (_host, report) =
                    register_dir(&Registry::new(), dir.path(), &PluginConfig::default()).unwrap();
                format!(
                    "{} failed, startup took {:?} (describe timeout 5 s each)",
                    report.failed.len(),
                    start.elapsed()
                )
            })
        }
        "largest_rgba_round_trip" => {
            let runtime = PluginRuntime::new(big_config()).unwrap();
            let probe_bytes = std::fs::read(wasm.join("omnigen_plugin_probe.wasm")).unwrap();
            let probe = load(&runtime, "probe", &probe_bytes);
            let image = PixelImage {
                width: 8192,
                height: 8192,
                format: PixelFormat::Rgba8,
                data: vec![0x5a; 8192 * 8192 * 4],
            };
            Box::new(move || {
                let start = Instant::now();
                let out = probe.run(
                    "identity",
                    vec![("image".into(), PluginValue::Image(image))],
                    &Map::new(),
                    &CallControl::default(),
                );
                format!(
                    "{} in {:?} (256 MiB in, 256 MiB out)",
                    if out.is_ok() { "ok" } else { "failed" },
                    start.elapsed()
                )
            })
        }
        "largest_gray_output" => {
            let dir = tempfile::tempdir().unwrap();
            install(
                dir.path(),
                "hostile",
                &hostile_bytes,
                LimitRequest::default(),
            );
            let registry = Arc::new(Registry::new());
            registry.register(Sink);
            let (host, _) = register_dir(&registry, dir.path(), &big_config()).unwrap();
            let executor = Executor::new(registry, ExecutorConfig::default());
            Box::new(move || {
                let graph = json!({"prompt": {"1": {"class_type": "hostile/huge_gray", "inputs": {}},
                                     "2": {"class_type": "Sink", "inputs": {"images": ["1", 0]}}}});
                let request = PromptRequest::from_json(graph).unwrap();
                let rt = tokio::runtime::Runtime::new().unwrap();
                let report = rt
                    .block_on(executor.run(&request, RunOptions::new(EventSink::none())))
                    .unwrap();
                drop((host, dir));
                format!(
                    "{} (8192x8192 gray into the engine, held as {})",
                    if report.is_success() { "ok" } else { "failed" },
                    report
                        .ui_outputs
                        .values()
                        .next()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                )
            })
        }
        other => panic!("unknown attack {other}"),
    }
}

fn main() {
    let wasm = wasm_dir();
    let args: Vec<String> = std::env::args().collect();
    if let Some(attack) = args.iter().find_map(|a| a.strip_prefix("--attack=")) {
        let run = prepare(attack, &wasm);
        let before = status_kib("VmRSS:");
        // Reset the peak-RSS mark: what follows is the attack alone.
        std::fs::write("/proc/self/clear_refs", "5").expect("reset VmHWM");
        let outcome = run();
        let peak = status_kib("VmHWM:");
        println!("{attack}\t{before}\t{peak}\t{outcome}");
        return;
    }
    println!(
        "{:<26} {:>10} {:>10}  outcome",
        "attack", "RSS MiB", "peak MiB"
    );
    let me = std::env::current_exe().unwrap();
    for attack in ATTACKS {
        let start = Instant::now();
        let out = std::process::Command::new(&me)
            .arg(format!("--attack={attack}"))
            .env(
                "OMNIGEN_GUEST_TARGET_DIR",
                wasm.parent().unwrap().parent().unwrap(),
            )
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or("");
        let fields: Vec<&str> = line.splitn(4, '\t').collect();
        if fields.len() == 4 {
            let mib = |s: &str| s.parse::<u64>().unwrap_or(0) as f64 / 1024.0;
            println!(
                "{:<26} {:>10.0} {:>10.0}  {} [{:?}]",
                attack,
                mib(fields[1]),
                mib(fields[2]),
                fields[3],
                start.elapsed().max(Duration::ZERO)
            );
        } else {
            println!(
                "{attack:<26} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
