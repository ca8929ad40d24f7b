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

fn show(label: &str, d: Duration) {
    println!("{label:<58} {:>10.1} µs", d.as_secs_f64() * 1e6);
}

fn native_invert(mut image: PixelImage) -> PixelImage {
    for px in image.data.chunks_exact_mut(4) {
        px[0] = 255 - px[0];
        px[1] = 255 - px[1];
        px[2] = 255 - px[2];
    }
    image
}

fn main() {
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
    show(
        "native: clone a 4 MiB image (one copy)",
        median(21, 20, || {
            black_box(image.clone());
        }),
    );
    show(
        "call `identity`, 1024x1024 RGBA in and out",
        median(21, 20, || {
            let out = plugin
                .run(
                    "identity",
                    vec![("image".into(), PluginValue::Image(image.clone()))],
                    &params,
                    &control,
                )
                .unwrap();
            black_box(out);
        }),
    );
    show(
        "native: clone + invert RGB of 1024x1024 RGBA",
        median(21, 20, || {
            black_box(native_invert(image.clone()));
        }),
    );
    show(
        "call `invert_rgba` (wasm), 1024x1024 RGBA in and out",
        median(21, 20, || {
            let out = plugin
                .run(
                    "invert_rgba",
                    vec![("image".into(), PluginValue::Image(image.clone()))],
                    &params,
                    &control,
                )
                .unwrap();
            black_box(out);
        }),
    );
}
