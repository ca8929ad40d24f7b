//! Plugin call costs next to native Rust: per-call overhead, instantiation, and moving a
//! 1024x1024 RGBA image in and out. Run with
//! `cargo bench -p omnigen-plugins --bench plugin_overhead`; results go into BENCHMARKS.md.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use omnigen_plugins::{
    guest, sha256_hex, CallControl, LimitRequest, LoadedPlugin, Manifest, PixelFormat, PixelImage,
    PluginConfig, PluginRuntime, PluginValue, ABI_VERSION,
};
use serde_json::Map;

/// Median of `rounds` timings of `f`, each averaged over `inner` calls.
fn median(rounds: usize, inner: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..inner.min(10) {
        f(); // warm up caches and pool slots
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..inner {
                f();
            }
            start.elapsed() / inner as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

/// Like [`median`], but each call gets an input made by `prepare` before the clock starts.
fn median_prepared<I, O>(
    rounds: usize,
    inner: usize,
    mut prepare: impl FnMut() -> I,
    mut f: impl FnMut(I) -> O,
) -> Duration {
    for _ in 0..inner.min(10) {
        black_box(f(prepare()));
    }
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let inputs: Vec<I> = (0..inner).map(|_| prepare()).collect();
            let start = Instant::now();
            for input in inputs {
                black_box(f(input));
            }
            start.elapsed() / inner as u32
        })
        .collect();
    times.sort();
    times[rounds / 2]
}

fn show(label: &str, d: Duration) {
    println!("{label:<58} {:>10.1} µs", d.as_secs_f64() * 1e6);
}

/// Minor page faults of this process so far (Linux; 0 elsewhere).
fn minor_faults() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)` one; minflt is field 10 overall, the 8th after `)`.
            let rest = &s[s.rfind(')')? + 2..];
            rest.split(' ').nth(7)?.parse().ok()
        })
        .unwrap_or(0)
}

fn native_invert(mut image: PixelImage) -> PixelImage {
    for px in image.data.chunks_exact_mut(4) {
        px[0] = 255 - px[0];
        px[1] = 255 - px[1];
        px[2] = 255 - px[2];
    }
    image
}

// The allocator settings of the `omnigen` binary, compiled from its own file (a bench cannot depend on a
// binary crate, and allocator tuning is no job of the engine or the plugin host), so the figures here are
// taken under exactly the binary's settings.
#[path = "../../../src/alloc.rs"]
mod alloc;

fn main() {
    // As the `omnigen` binary does at startup.
    let tuned = alloc::tune_for_large_buffers();
    println!("allocator tuned for large buffers (as in `omnigen`): {tuned}");
    let target = std::env::var_os("OMNIGEN_GUEST_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-target"));
    let wasm_dir = guest::build_guests(&target).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(wasm_dir.join("omnigen_plugin_probe.wasm")).unwrap();
    let manifest = Manifest {
        name: "probe".into(),
        version: "0.1.0".into(),
        abi: ABI_VERSION.into(),
        wasm: "probe.wasm".into(),
        sha256: sha256_hex(&bytes),
        limits: LimitRequest::default(),
    };
    let runtime = PluginRuntime::new(PluginConfig::default()).unwrap();
    let start = Instant::now();
    let plugin =
        LoadedPlugin::from_bytes(&runtime, manifest, Path::new("probe.plugin.json"), &bytes)
            .unwrap();
    show(
        "load (compile with Cranelift, no disk cache, + describe)",
        start.elapsed(),
    );

    let control = CallControl::default();
    let params = Map::new();
    let image = PixelImage {
        width: 1024,
        height: 1024,
        format: PixelFormat::Rgba8,
        data: (0..4 << 20).map(|i| (i % 251) as u8).collect(),
    };

    show(
        "instantiate (fresh store + instance from InstancePre)",
        median(21, 200, || plugin.instantiate_only().unwrap()),
    );
    show(
        "call `nop` (fresh instance + call + output checks)",
        median(21, 200, || {
            black_box(plugin.run("nop", vec![], &params, &control).unwrap());
        }),
    );
    // Image calls: the input an engine node hands over is prepared outside the timing (a plugin node
    // converts the engine's image into this buffer anyway), so each figure is the node's own work.
    let (plugin, params, control) = (&plugin, &params, &control);
    let image_call = |node: &'static str| {
        move |input: PixelImage| {
            plugin
                .run(
                    node,
                    vec![("image".into(), PluginValue::Image(input))],
                    params,
                    control,
                )
                .unwrap()
        }
    };
    let identity = image_call("identity");
    let invert = image_call("invert_rgba");
    let native_identity = median_prepared(21, 20, || &image, |input| input.clone());
    let wasm_identity = median_prepared(21, 20, || image.clone(), identity);
    show(
        "native identity node: copy a 4 MiB RGBA image",
        native_identity,
    );
    show(
        "wasm `identity`: 4 MiB in and out, fresh instance",
        wasm_identity,
    );
    show(
        "  host overhead of the 4 MiB round trip (wasm - native)",
        wasm_identity.saturating_sub(native_identity),
    );
    let native_inv = median_prepared(21, 20, || image.clone(), native_invert);
    let wasm_inv = median_prepared(21, 20, || image.clone(), invert);
    show("native invert RGB of a 1024x1024 RGBA image", native_inv);
    show("wasm `invert_rgba`: 4 MiB in, invert, out", wasm_inv);

    let before = minor_faults();
    for _ in 0..20 {
        black_box(identity(image.clone()));
    }
    println!(
        "{:<58} {:>10}",
        "page faults per `identity` call (incl. the input copy)",
        (minor_faults() - before) / 20
    );
}
