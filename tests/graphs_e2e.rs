//! End to end: every example graph in `graphs/` on the tiny test model, driven through the engine
//! in-process (one long-lived executor, so re-runs hit the cache as in `omnigen watch`).
//!
//! - each graph runs, writes PNGs with the graph embedded, and a re-run with only the sampler seeds
//!   changed re-executes exactly the samplers and what follows them (counted from `executing` events);
//! - parity: text-to-image and an edit with image guidance, with `EncodeVAE` in mean mode and the noise from
//!   `LoadLatent`, reproduce the official pipeline's final latent (≤ 1e-4) and picture (±1) stored in
//!   `model/tests/fixtures/reference/sampling.safetensors`;
//! - bad inputs are node errors, before anything runs where the engine can tell;
//! - `omnigen run graphs/text_to_image.json` without the model files explains what to download and where.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use omnigen_engine::{
    Dirs, Event, EventSink, Executor, ExecutorConfig, PromptRequest, Registry, RunOptions,
    RunReport, RunStatus,
};
use omnigen_nodes::omnigen::hub::HubSettings;
use omnigen_nodes::omnigen::load::LoadOmniGen;
use serde_json::{json, Value as Json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    repo().join("model/tests/fixtures")
}

fn tiny_model() -> String {
    fixtures().join("tiny").display().to_string()
}

/// All example graphs, by file name.
fn example_graphs() -> BTreeMap<String, Json> {
    let mut graphs = BTreeMap::new();
    for entry in std::fs::read_dir(repo().join("graphs")).expect("graphs/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read graph");
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_string();
            graphs.insert(name, serde_json::from_str(&text).expect("graph is JSON"));
        }
    }
    graphs
}

/// Ids of the nodes of `class`.
fn ids_of(graph: &Json, class: &str) -> Vec<String> {
    graph
        .as_object()
        .expect("object")
        .iter()
        .filter(|(_, n)| n["class_type"] == class)
        .map(|(id, _)| id.clone())
        .collect()
}

/// `--set ID.INPUT=VALUE` for every node of `class`.
fn set_all(graph: &mut Json, class: &str, input: &str, value: Json) {
    for id in ids_of(graph, class) {
        graph[&id]["inputs"][input] = value.clone();
    }
}

/// The overrides that make a graph quick on the tiny model: its path, small outputs, two steps.
fn for_tiny_model(graph: &mut Json) {
    set_all(graph, "LoadOmniGen", "model", json!(tiny_model()));
    set_all(graph, "LoadOmniGen", "device", json!("cpu"));
    set_all(graph, "OmniGenSample", "width", json!(64));
    set_all(graph, "OmniGenSample", "height", json!(48));
    set_all(graph, "OmniGenSample", "steps", json!(2));
}

/// A test session: folders, an executor that lives across runs, and its event log.
struct Session {
    _dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
    executor: Executor,
    runtime: tokio::runtime::Runtime,
}

impl Session {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (input, output, temp) = (
            dir.path().join("input"),
            dir.path().join("output"),
            dir.path().join("temp"),
        );
        for d in [&input, &output, &temp] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        copy_dir(&repo().join("graphs/input"), &input);
        let registry = Arc::new(Registry::new());
        omnigen_nodes::register_builtin(&registry);
        // Hermetic hub settings: an empty cache and an endpoint that refuses at once, whatever the
        // environment says (HF_HOME, HF_HUB_OFFLINE, internet access).
        let hub = HubSettings {
            cache_dir: dir.path().join("hf-cache"),
            endpoint: Some("http://127.0.0.1:9".into()),
            offline: false,
        };
        registry.register(LoadOmniGen::with_hub(hub));
        let config = ExecutorConfig {
            max_concurrency: 2,
            cache_budget_bytes: 1 << 30,
            dirs: Dirs {
                input: input.clone(),
                output: output.clone(),
                temp,
            },
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        Session {
            _dir: dir,
            input,
            output,
            executor: Executor::new(registry, config),
            runtime,
        }
    }

    /// Validates and runs `graph`; returns the report (or the validation report as `Err`) and the ids of the
    /// nodes that started executing, from the `executing` events.
    fn run(
        &self,
        graph: &Json,
    ) -> (
        Result<RunReport, omnigen_engine::ValidationReport>,
        Vec<String>,
    ) {
        let request = PromptRequest::from_json(graph.clone()).expect("graph parses");
        let started = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&started);
        let events = EventSink::from_fn(move |event| {
            if let Event::Executing {
                node: Some(node), ..
            } = event
            {
                log.lock().expect("log").push(node);
            }
        });
        let result = self
            .runtime
            .block_on(self.executor.run(&request, RunOptions::new(events)));
        let started = started.lock().expect("log").clone();
        (result, started)
    }

    fn run_ok(&self, name: &str, graph: &Json) -> (RunReport, Vec<String>) {
        let (result, started) = self.run(graph);
        let report =
            result.unwrap_or_else(|e| panic!("{name} failed validation:\n{}", e.to_text()));
        assert!(report.is_success(), "{name} failed: {:?}", report.status);
        (report, started)
    }

    fn pngs(&self) -> BTreeSet<PathBuf> {
        files_with_extension(&self.output, "png")
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}

fn files_with_extension(dir: &Path, ext: &str) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_with_extension(&path, ext));
        } else if path.extension().is_some_and(|e| e == ext) {
            found.insert(path);
        }
    }
    found
}

/// The text of a PNG text chunk with the given keyword, if present.
fn png_text(path: &Path, keyword: &str) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    let chunks = omnigen_nodes::io::png_write::read_png_text_chunks(&bytes).ok()?;
    chunks
        .into_iter()
        .find(|(k, _)| k == keyword)
        .map(|(_, text)| text)
}

/// Nodes downstream of `roots` (including them), following links.
fn downstream(graph: &Json, roots: &[String]) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = roots.iter().cloned().collect();
    loop {
        let before = set.len();
        for (id, node) in graph.as_object().expect("object") {
            let inputs = node["inputs"].as_object().expect("inputs");
            let linked_to_set = inputs
                .values()
                .filter_map(|v| v.as_array())
                .any(|a| a.len() == 2 && a[0].as_str().is_some_and(|src| set.contains(src)));
            if linked_to_set {
                set.insert(id.clone());
            }
        }
        if set.len() == before {
            return set;
        }
    }
}

#[test]
fn every_graph_validates_and_describes_itself() {
    let graphs = example_graphs();
    assert!(
        graphs.len() >= 8,
        "expected the 8 task graphs, found {:?}",
        graphs.keys()
    );
    let readme =
        std::fs::read_to_string(repo().join("graphs/README.md")).expect("graphs/README.md");
    let session = Session::new();
    for (name, graph) in &graphs {
        assert!(
            readme.contains(&format!("({name})")),
            "graphs/README.md has no line for {name}"
        );
        let described = graph.as_object().expect("object").values().any(|n| {
            n["_meta"]["description"]
                .as_str()
                .is_some_and(|d| d.len() > 20)
        });
        assert!(described, "{name} has no _meta.description");
        let request = PromptRequest::from_json(graph.clone()).expect("parses");
        if let Err(report) = session.executor.validate(&request) {
            panic!("{name} does not validate:\n{}", report.to_text());
        }
        assert_eq!(ids_of(graph, "LoadOmniGen").len(), 1, "{name}");
        assert_eq!(
            graph["1"]["inputs"]["model"], "Shitao/OmniGen-v1",
            "{name}: node 1 loads the hub model"
        );
    }
}

#[test]
fn every_graph_runs_on_the_tiny_model_and_reruns_only_from_the_sampler() {
    let session = Session::new();
    for (name, mut graph) in example_graphs() {
        for_tiny_model(&mut graph);
        let before = session.pngs();
        let (report, started) = session.run_ok(&name, &graph);
        let written: Vec<PathBuf> = session.pngs().difference(&before).cloned().collect();
        let savers = ids_of(&graph, "SaveImage");
        assert_eq!(
            written.len(),
            savers.len(),
            "{name}: one PNG per SaveImage, got {written:?}"
        );
        for png in &written {
            let embedded = png_text(png, "prompt")
                .unwrap_or_else(|| panic!("{name}: {png:?} has no prompt chunk"));
            let embedded: Json = serde_json::from_str(&embedded).expect("embedded prompt is JSON");
            assert_eq!(
                embedded, graph,
                "{name}: the PNG embeds the graph that made it"
            );
            let img = image::open(png).expect("PNG decodes").to_rgb8();
            assert!(img.width() >= 16 && img.height() >= 16, "{name}: {png:?}");
        }
        let executed: BTreeSet<String> = report
            .executed
            .iter()
            .map(|id| id.as_str().to_string())
            .collect();
        assert_eq!(
            started.iter().cloned().collect::<BTreeSet<_>>(),
            executed,
            "{name}: events and report agree"
        );

        // Same graph, other seeds: the samplers and their descendants run again, nothing else.
        let samplers = ids_of(&graph, "OmniGenSample");
        for id in &samplers {
            let seed = graph[id]["inputs"]["seed"].as_u64().expect("seed");
            graph[id]["inputs"]["seed"] = json!(seed + 1);
        }
        let (_, rerun) = session.run_ok(&name, &graph);
        let rerun: BTreeSet<String> = rerun.into_iter().collect();
        assert_eq!(
            rerun,
            downstream(&graph, &samplers),
            "{name}: re-executed nodes after a seed change"
        );
    }
}

/// Reads one tensor of a `.safetensors` file as f32 values (F32 or U8 data) with its shape.
fn reference_tensor(file: &Path, key: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(file).expect("reference file");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("len")) as usize;
    let header: Json = serde_json::from_slice(&bytes[8..8 + header_len]).expect("header");
    let entry = &header[key];
    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .unwrap_or_else(|| panic!("no {key}"))
        .iter()
        .map(|d| d.as_u64().expect("dim") as usize)
        .collect();
    let offsets = entry["data_offsets"].as_array().expect("offsets");
    let (start, end) = (
        offsets[0].as_u64().expect("start") as usize,
        offsets[1].as_u64().expect("end") as usize,
    );
    let data = &bytes[8 + header_len + start..8 + header_len + end];
    let values = match entry["dtype"].as_str() {
        Some("F32") => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Some("U8") => data.iter().map(|v| f32::from(*v)).collect(),
        other => panic!("{key}: unexpected dtype {other:?}"),
    };
    (values, shape)
}

/// Writes a reference noise tensor as a latent file `LoadLatent` reads.
fn write_noise(session: &Session, case: &str) -> String {
    let (values, shape) = reference_tensor(
        &fixtures().join("reference/sampling.safetensors"),
        &format!("loop.{case}.noise"),
    );
    let header =
        json!({"latent": {"dtype": "F32", "shape": shape, "data_offsets": [0, values.len() * 4]}})
            .to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    let name = format!("noise_{case}.safetensors");
    std::fs::write(session.input.join(&name), bytes).expect("write noise");
    name
}

/// Adds `LoadLatent` (noise into the sampler) and `SaveLatent` (the sampler's result) to a graph.
fn with_injected_noise(graph: &mut Json, sampler: &str, noise_file: &str) {
    graph["100"] = json!({"class_type": "LoadLatent", "inputs": {"latent": noise_file}});
    graph[sampler]["inputs"]["noise"] = json!(["100", 0]);
    graph["101"] = json!({"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0], "filename_prefix": "parity/latent"}});
}

/// Runs a parity case and compares the final latent and the picture with the reference.
fn check_parity(session: &Session, name: &str, graph: &Json, case: &str) {
    let before_png = session.pngs();
    let before_latents = files_with_extension(&session.output, "safetensors");
    session.run_ok(name, graph);
    let png = session
        .pngs()
        .difference(&before_png)
        .next()
        .cloned()
        .expect("a new PNG");
    let latent_file = files_with_extension(&session.output, "safetensors")
        .difference(&before_latents)
        .next()
        .cloned()
        .expect("a new latent file");

    let reference = fixtures().join("reference/sampling.safetensors");
    let (want, want_shape) = reference_tensor(&reference, &format!("loop.{case}.final_latent"));
    let (got, got_shape) = reference_tensor(&latent_file, "latent");
    assert_eq!(got_shape, want_shape, "{case}: latent shape");
    let max_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff <= 1e-4,
        "{case}: final latent differs by {max_diff}"
    );

    let (want_px, want_px_shape) =
        reference_tensor(&reference, &format!("loop.{case}.image_uint8"));
    let img = image::open(&png).expect("PNG").to_rgb8();
    assert_eq!(
        vec![img.height() as usize, img.width() as usize, 3],
        want_px_shape,
        "{case}: picture size"
    );
    let worst = img
        .as_raw()
        .iter()
        .zip(&want_px)
        .map(|(a, b)| (f32::from(*a) - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1.0, "{case}: a pixel differs by {worst}");
}

fn sampling_case(name: &str) -> Json {
    let cases: Json = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json"),
    )
    .expect("JSON");
    cases["sampling"]
        .as_array()
        .expect("sampling")
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .expect("case")
}

/// Settings of a reference sampling case applied to a graph's prompt and sampler.
fn apply_case(graph: &mut Json, case: &Json) {
    let sampler = &ids_of(graph, "OmniGenSample")[0];
    let prompt = &ids_of(graph, "BuildPrompt")[0];
    graph[prompt]["inputs"]["instruction"] = case["prompt"].clone();
    graph[prompt]["inputs"]["use_img_guidance"] = case["use_img_guidance"].clone();
    let s = &mut graph[sampler]["inputs"];
    for key in [
        "width",
        "height",
        "steps",
        "guidance_scale",
        "img_guidance_scale",
        "use_input_image_size_as_output",
    ] {
        s[key] = case[key].clone();
    }
    s["separate_cfg"] = case["separate_cfg"].clone();
    s["kv_cache"] = json!(if case["use_kv_cache"] == true {
        "reference"
    } else {
        "off"
    });
    set_all(graph, "LoadOmniGen", "model", json!(tiny_model()));
    set_all(graph, "LoadOmniGen", "dtype", json!("f32"));
    set_all(graph, "LoadOmniGen", "device", json!("cpu"));
    set_all(graph, "EncodeVAE", "mode", json!("mean"));
    set_all(
        graph,
        "EncodeVAE",
        "max_input_image_size",
        case["max_input_image_size"].clone(),
    );
}

#[test]
fn text_to_image_matches_the_reference_pipeline() {
    let session = Session::new();
    let case = sampling_case("t2i_sep_kv");
    let mut graph = example_graphs()
        .remove("text_to_image.json")
        .expect("graph");
    apply_case(&mut graph, &case);
    let noise = write_noise(&session, "t2i_sep_kv");
    let sampler = ids_of(&graph, "OmniGenSample")[0].clone();
    with_injected_noise(&mut graph, &sampler, &noise);
    check_parity(&session, "text_to_image", &graph, "t2i_sep_kv");
}

#[test]
fn edit_with_image_guidance_matches_the_reference_pipeline() {
    let session = Session::new();
    let case = sampling_case("edit_input_size_sep_kv");
    let mut graph = example_graphs()
        .remove("instruction_edit.json")
        .expect("graph");
    apply_case(&mut graph, &case);
    let image = case["images"][0].as_str().expect("image key");
    let file = sampling_image_file(image);
    std::fs::copy(
        fixtures().join("images").join(&file),
        session.input.join(&file),
    )
    .expect("copy input");
    set_all(&mut graph, "LoadImage", "image", json!(file));
    let noise = write_noise(&session, "edit_input_size_sep_kv");
    let sampler = ids_of(&graph, "OmniGenSample")[0].clone();
    with_injected_noise(&mut graph, &sampler, &noise);
    check_parity(
        &session,
        "instruction_edit",
        &graph,
        "edit_input_size_sep_kv",
    );
}

/// The file of a fixture image key (`"b"` → `b_45x70.png`).
fn sampling_image_file(key: &str) -> String {
    let cases: Json = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("cases.json")).expect("cases.json"),
    )
    .expect("JSON");
    let entry = &cases["images"][key];
    entry
        .as_str()
        .or_else(|| entry["file"].as_str())
        .map(|f| f.rsplit('/').next().unwrap_or(f).to_string())
        .unwrap_or_else(|| panic!("cases.json images.{key}: {entry}"))
}

/// The validation error text for `node`, or panics if the graph validated.
fn validation_error(session: &Session, graph: &Json, node: &str) -> String {
    match session.run(graph).0 {
        Err(report) => {
            let text = report.to_text();
            assert!(
                report.node_errors.keys().any(|id| id.as_str() == node),
                "error not on node {node}:\n{text}"
            );
            text
        }
        Ok(report) => panic!(
            "expected a validation error on node {node}, the run ended {:?}",
            report.status
        ),
    }
}

#[test]
fn bad_inputs_are_node_errors() {
    let session = Session::new();
    let graphs = example_graphs();
    let mut t2i = graphs["text_to_image.json"].clone();
    for_tiny_model(&mut t2i);
    let sampler = ids_of(&t2i, "OmniGenSample")[0].clone();

    // Before anything runs: sizes, steps, a model folder without its files.
    let mut g = t2i.clone();
    g[&sampler]["inputs"]["width"] = json!(1000);
    assert!(validation_error(&session, &g, &sampler).contains("multiple of 16"));
    let mut g = t2i.clone();
    g[&sampler]["inputs"]["height"] = json!(3088);
    validation_error(&session, &g, &sampler);
    let mut g = t2i.clone();
    g[&sampler]["inputs"]["steps"] = json!(0);
    validation_error(&session, &g, &sampler);
    let incomplete = tempfile::tempdir().expect("tempdir");
    std::fs::write(incomplete.path().join("config.json"), "{}").expect("write");
    let mut g = t2i.clone();
    g["1"]["inputs"]["model"] = json!(incomplete.path().display().to_string());
    let text = validation_error(&session, &g, "1");
    assert!(
        text.contains("model.safetensors") && text.contains("tokenizer.json"),
        "{text}"
    );

    // Placeholders and connected images: checked against the linked image_N sockets before anything runs.
    let mut edit = graphs["instruction_edit.json"].clone();
    for_tiny_model(&mut edit);
    let prompt = ids_of(&edit, "BuildPrompt")[0].clone();
    let mut g = edit.clone();
    g[&prompt]["inputs"]["instruction"] = json!("Remove the red ball.");
    let text = validation_error(&session, &g, &prompt);
    assert!(
        text.contains("image_1 is connected but the instruction never refers to it"),
        "{text}"
    );
    let mut g = edit.clone();
    g[&prompt]["inputs"]["instruction"] =
        json!("<img><|image_1|></img> and <img><|image_2|></img>");
    let text = validation_error(&session, &g, &prompt);
    assert!(text.contains("nothing is connected to image_2"), "{text}");

    // A corrupt input picture.
    std::fs::write(
        session.input.join("corrupt.png"),
        b"\x89PNG\r\n\x1a\nthis is not a picture",
    )
    .expect("write");
    let mut g = edit.clone();
    let loader = ids_of(&g, "LoadImage")[0].clone();
    g[&loader]["inputs"]["image"] = json!("corrupt.png");
    match session.run(&g).0 {
        Err(report) => assert!(
            report.node_errors.keys().any(|id| id.as_str() == loader),
            "{}",
            report.to_text()
        ),
        Ok(RunReport {
            status: RunStatus::Failed(data),
            ..
        }) => assert_eq!(data.node_id, loader),
        Ok(report) => panic!("a corrupt picture must fail, got {:?}", report.status),
    }
}

#[test]
fn the_main_command_explains_what_to_download_when_offline() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_omnigen"))
        .current_dir(repo())
        .args(["run", "graphs/text_to_image.json", "--output-dir"])
        .arg(out.path())
        .env("HF_HOME", cache.path())
        // Loopback discard port: refused at once, like a machine without internet access.
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .expect("run omnigen");
    assert!(!output.status.success(), "must fail without the model");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "Shitao/OmniGen-v1",
        "model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
        "tokenizer.json",
        "--set 1.model=",
        "models--Shitao--OmniGen-v1",
    ] {
        assert!(text.contains(needle), "'{needle}' missing from:\n{text}");
    }
}

#[test]
fn the_sampler_reports_every_step_and_stops_when_cancelled() {
    let session = Session::new();
    let mut graph = example_graphs()
        .remove("text_to_image.json")
        .expect("graph");
    for_tiny_model(&mut graph);
    let sampler = ids_of(&graph, "OmniGenSample")[0].clone();
    graph[&sampler]["inputs"]["steps"] = json!(6);
    let request = PromptRequest::from_json(graph.clone()).expect("parses");

    // A full run reports steps 1..=6 of 6.
    let steps = Arc::new(Mutex::new(Vec::new()));
    let previews = Arc::new(Mutex::new(Vec::new()));
    let (log, preview_log) = (Arc::clone(&steps), Arc::clone(&previews));
    let events = EventSink::from_fn(move |event| {
        if let Event::Progress {
            value,
            max,
            node,
            preview,
            ..
        } = event
        {
            log.lock().expect("log").push((node, value, max));
            preview_log
                .lock()
                .expect("log")
                .push(preview.map(|p| p.dims()));
        }
    });
    let report = session
        .runtime
        .block_on(session.executor.run(&request, RunOptions::new(events)))
        .expect("validates");
    assert!(report.is_success(), "{:?}", report.status);
    let want: Vec<(String, u64, u64)> = (1..=6).map(|v| (sampler.clone(), v, 6)).collect();
    assert_eq!(*steps.lock().expect("log"), want);
    // Each step carries an RGB preview of the latent at latent resolution (output size / 8).
    let (height, width) = (
        graph[&sampler]["inputs"]["height"]
            .as_u64()
            .expect("height") as usize,
        graph[&sampler]["inputs"]["width"].as_u64().expect("width") as usize,
    );
    let want_preview = Some((1, height / 8, width / 8, 3));
    assert!(
        previews
            .lock()
            .expect("log")
            .iter()
            .all(|p| *p == want_preview),
        "{:?}",
        previews.lock().expect("log")
    );

    // Another seed, cancelled at the sampler's second step: the run stops there and nothing is saved.
    graph[&sampler]["inputs"]["seed"] = json!(7);
    let request = PromptRequest::from_json(graph).expect("parses");
    let cancel = omnigen_engine::CancelToken::new();
    let trigger = cancel.clone();
    let events = EventSink::from_fn(move |event| {
        if let Event::Progress { value: 2, .. } = event {
            trigger.cancel();
        }
    });
    let pngs_before = session.pngs();
    let report = session
        .runtime
        .block_on(
            session
                .executor
                .run(&request, RunOptions::new(events).cancel(cancel)),
        )
        .expect("validates");
    assert!(
        matches!(report.status, RunStatus::Interrupted { .. }),
        "{:?}",
        report.status
    );
    assert_eq!(session.pngs(), pngs_before, "a cancelled run saves nothing");
}

#[test]
fn two_samplers_on_one_device_run_one_after_the_other() {
    let session = Session::new();
    let mut graph = example_graphs()
        .remove("text_to_image.json")
        .expect("graph");
    for_tiny_model(&mut graph);
    let sampler = ids_of(&graph, "OmniGenSample")[0].clone();
    graph[&sampler]["inputs"]["steps"] = json!(5);
    // A second, independent branch from the same model: sampler, decode, save.
    let mut second = graph[&sampler].clone();
    second["inputs"]["seed"] = json!(99);
    graph["200"] = second;
    graph["201"] =
        json!({"class_type": "DecodeVAE", "inputs": {"vae": ["1", 1], "latent": ["200", 0]}});
    graph["202"] = json!({"class_type": "SaveImage", "inputs": {"images": ["201", 0], "filename_prefix": "second"}});
    let request = PromptRequest::from_json(graph).expect("parses");

    let order = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&order);
    let events = EventSink::from_fn(move |event| {
        if let Event::Progress { node, .. } = event {
            log.lock().expect("log").push(node);
        }
    });
    let report = session
        .runtime
        .block_on(session.executor.run(&request, RunOptions::new(events)))
        .expect("validates");
    assert!(report.is_success(), "{:?}", report.status);
    let order = order.lock().expect("log").clone();
    assert_eq!(order.len(), 10, "{order:?}");
    // All steps of one sampler, then all steps of the other: never interleaved.
    let switches = order.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(switches, 1, "samplers interleaved: {order:?}");
}

/// Quantized weights through the graph: `LoadOmniGen`'s `dtype` q8 quantizes at load, and a folder
/// written by `omnigen quantize` loads as any model folder; both run text-to-image to a picture.
#[test]
fn quantized_models_run_text_to_image() {
    let session = Session::new();
    let scratch = tempfile::tempdir().expect("tempdir");
    let folder = scratch.path().join("tiny-q4");
    let quantize = |out: &Path, format: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_omnigen"))
            .arg("quantize")
            .arg(fixtures().join("tiny"))
            .arg(out)
            .args(["--format", format])
            .output()
            .expect("run omnigen quantize")
    };
    let done = quantize(&folder, "q4");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&done.stdout).trim(),
        folder.display().to_string()
    );
    assert!(folder.join("quantized.gguf").is_file());

    let refused = quantize(&scratch.path().join("f32"), "f32");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a quantized format"));

    let mut graph = example_graphs()["text_to_image.json"].clone();
    for_tiny_model(&mut graph);
    set_all(&mut graph, "LoadOmniGen", "dtype", json!("q8"));
    let before = session.pngs();
    session.run_ok("text_to_image q8", &graph);
    set_all(&mut graph, "LoadOmniGen", "dtype", json!("auto"));
    set_all(
        &mut graph,
        "LoadOmniGen",
        "model",
        json!(folder.display().to_string()),
    );
    session.run_ok("text_to_image pre-quantized q4", &graph);
    assert_eq!(session.pngs().difference(&before).count(), 2);
}
