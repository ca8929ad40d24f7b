//! `omnigen run`: outputs, metadata, numbering, overrides, events, failures.

use serde_json::{json, Value as Json};

use crate::support::*;

#[test]
fn load_then_save_writes_a_png_with_the_graph_embedded_and_numbers_runs() {
    let ws = Workspace::new();
    ws.write_input_png("cat.png", 5, 3, 255);
    let graph = load_save_graph("cat.png", "cat");
    ws.write_json("graph.json", &graph);

    let first = ws.run(&["run", "graph.json"]);
    assert_exit(&first, 0);
    // stdout lists the written file, for scripts.
    assert_eq!(stdout(&first).trim(), "output/cat_00001_.png");
    let second = ws.run(&["run", "graph.json"]);
    assert_exit(&second, 0);
    assert_eq!(stdout(&second).trim(), "output/cat_00002_.png");
    assert_eq!(ws.files_in("output"), ["cat_00001_.png", "cat_00002_.png"]);

    let saved = ws.path("output/cat_00001_.png");
    let chunks = png_text_chunks(&saved);
    let prompt = chunks
        .iter()
        .find(|(k, _)| k == "prompt")
        .expect("prompt chunk");
    assert_eq!(
        serde_json::from_str::<Json>(&prompt.1).expect("json"),
        graph
    );

    // The pixels survive the round trip (RGB; alpha is the MASK output, not saved).
    let pixels = image::open(&saved).expect("open saved").to_rgb8();
    assert_eq!(pixels.dimensions(), (5, 3));
    assert_eq!(pixels.get_pixel(4, 2).0, [40, 40, 200]);
}

#[test]
fn existing_files_are_never_overwritten() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    ws.write_json("graph.json", &load_save_graph("a.png", "shot"));
    std::fs::create_dir(ws.path("output")).expect("mkdir");
    std::fs::write(ws.path("output/shot_00003_.png"), b"keep me").expect("seed");

    let out = ws.run(&["run", "graph.json"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), "output/shot_00004_.png");
    assert_eq!(
        std::fs::read(ws.path("output/shot_00003_.png")).expect("read"),
        b"keep me"
    );
}

#[test]
fn wrapper_extra_pnginfo_is_embedded_and_subfolders_are_created() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let workflow = json!({"nodes": [{"id": 1, "type": "LoadImage"}], "version": 0.4});
    ws.write_json(
        "request.json",
        &json!({
            "prompt": load_save_graph("a.png", "album/day1/pic"),
            "extra_data": {"extra_pnginfo": {"workflow": workflow}}
        }),
    );
    let out = ws.run(&["run", "request.json"]);
    assert_exit(&out, 0);
    let saved = ws.path("output/album/day1/pic_00001_.png");
    let chunks = png_text_chunks(&saved);
    let keys: Vec<&str> = chunks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["prompt", "workflow"]);
    assert_eq!(
        serde_json::from_str::<Json>(&chunks[1].1).expect("json"),
        workflow
    );
}

#[test]
fn set_overrides_an_input_and_feeds_primitives() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    let mut graph = load_save_graph("a.png", "unused");
    graph["2"]["inputs"]["filename_prefix"] = json!(["3", 0]);
    graph["3"] = json!({"class_type": "PrimitiveString", "inputs": {"value": "from_graph"}});
    ws.write_json("graph.json", &graph);

    let out = ws.run(&["run", "graph.json", "--set", "3.value=from set"]);
    assert_exit(&out, 0);
    assert_eq!(ws.files_in("output"), ["from set_00001_.png"]);

    // The embedded graph is the one that ran, override included.
    let chunks = png_text_chunks(&ws.path("output/from set_00001_.png"));
    let prompt: Json = serde_json::from_str(&chunks[0].1).expect("json");
    assert_eq!(prompt["3"]["inputs"]["value"], "from set");
}

#[test]
fn set_with_an_unknown_node_or_input_is_a_usage_error() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    ws.write_json("graph.json", &load_save_graph("a.png", "x"));

    let out = ws.run(&["run", "graph.json", "--set", "7.seed=1"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no node with id '7'"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["run", "graph.json", "--set", "2.prefix=x"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("no input 'prefix'"),
        "{}",
        stderr(&out)
    );
    let out = ws.run(&["run", "graph.json", "--set", "nonsense"]);
    assert_exit(&out, 2);
    // Refused while parsing the arguments, naming the flag and the value.
    let err = stderr(&out);
    assert!(err.contains("'nonsense'") && err.contains("--set"), "{err}");
    assert!(err.contains("expected ID.INPUT=VALUE"), "{err}");
    assert!(ws.files_in("output").is_empty());
}

#[test]
fn events_jsonl_on_stdout_follow_comfyui_order() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    ws.write_json("graph.json", &load_save_graph("a.png", "ev"));
    let out = ws.run(&["run", "graph.json", "--events", "jsonl"]);
    assert_exit(&out, 0);
    let events = json_lines(&stdout(&out));
    assert_eq!(
        event_types(&events),
        [
            "execution_start",
            "execution_cached",
            "executing",
            "executing",
            "executed",
            "execution_success",
            "executing"
        ]
    );
    assert_eq!(executed_nodes(&events), ["1", "2"]);
    let executed = &events[4]["data"];
    assert_eq!(executed["node"], "2");
    assert_eq!(
        executed["output"],
        json!({"images": [{"filename": "ev_00001_.png", "subfolder": "", "type": "output"}]})
    );
    assert_eq!(events[6]["data"]["node"], Json::Null);
    // With stdout taken by events, the written file is reported on stderr.
    assert!(
        stderr(&out).contains("wrote output/ev_00001_.png"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn events_to_a_file_leave_stdout_for_the_file_list() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    ws.write_json("graph.json", &load_save_graph("a.png", "ev"));
    let out = ws.run(&["run", "graph.json", "--events", "events.jsonl"]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out).trim(), "output/ev_00001_.png");
    let events = json_lines(&std::fs::read_to_string(ws.path("events.jsonl")).expect("events"));
    assert_eq!(events.first().expect("events")["type"], "execution_start");
    assert_eq!(events.last().expect("events")["data"]["node"], Json::Null);
}

#[test]
fn a_corrupt_image_fails_execution_naming_the_file() {
    let ws = Workspace::new();
    std::fs::write(
        ws.path("input/broken.png"),
        b"\x89PNG\r\n\x1a\nthis is not a png",
    )
    .expect("write");
    ws.write_json("graph.json", &load_save_graph("broken.png", "x"));
    let out = ws.run(&["run", "graph.json", "--events", "events.jsonl"]);
    assert_exit(&out, 1);
    assert!(stderr(&out).contains("broken.png"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("node 1 (LoadImage) failed"),
        "{}",
        stderr(&out)
    );
    let events = json_lines(&std::fs::read_to_string(ws.path("events.jsonl")).expect("events"));
    let error = events
        .iter()
        .find(|e| e["type"] == "execution_error")
        .expect("execution_error event");
    assert_eq!(error["data"]["node_id"], "1");
    assert!(ws.files_in("output").is_empty());
}

#[test]
fn paths_escaping_the_input_folder_are_refused_unless_allowed() {
    let ws = Workspace::new();
    let outside = ws.write_input_png("a.png", 2, 2, 255);
    std::fs::create_dir(ws.path("elsewhere")).expect("mkdir");
    ws.write_json("escape.json", &load_save_graph("../elsewhere/a.png", "x"));
    let out = ws.run(&["run", "escape.json"]);
    assert_exit(&out, 3);
    assert!(stderr(&out).contains("escapes"), "{}", stderr(&out));

    let absolute = outside.to_str().expect("utf-8 path");
    ws.write_json("absolute.json", &load_save_graph(absolute, "abs"));
    assert_exit(&ws.run(&["run", "absolute.json"]), 3);
    let out = ws.run(&["run", "absolute.json", "--allow-absolute-paths"]);
    assert_exit(&out, 0);
    assert_eq!(ws.files_in("output"), ["abs_00001_.png"]);
}

#[test]
fn preview_image_writes_to_temp_with_type_temp() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 128);
    ws.write_json(
        "graph.json",
        &json!({
            "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
            "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
        }),
    );
    let out = ws.run(&["run", "graph.json", "--events", "jsonl"]);
    assert_exit(&out, 0);
    let events = json_lines(&stdout(&out));
    let executed = events
        .iter()
        .find(|e| e["type"] == "executed")
        .expect("executed");
    let image = &executed["data"]["output"]["images"][0];
    assert_eq!(image["type"], "temp");
    let name = image["filename"].as_str().expect("filename");
    assert_eq!(ws.files_in("temp"), [name]);
    assert!(ws.files_in("output").is_empty());
}

#[test]
fn the_input_and_output_folders_can_be_moved() {
    let ws = Workspace::new();
    ws.write_input_png("a.png", 2, 2, 255);
    std::fs::rename(ws.path("input"), ws.path("pictures")).expect("rename");
    ws.write_json("graph.json", &load_save_graph("a.png", "moved"));
    let out = ws.run(&[
        "run",
        "graph.json",
        "--input-dir",
        "pictures",
        "--output-dir",
        "results",
    ]);
    assert_exit(&out, 0);
    assert_eq!(ws.files_in("results"), ["moved_00001_.png"]);
}

#[test]
fn jpeg_and_webp_inputs_load() {
    let ws = Workspace::new();
    let picture = image::RgbImage::from_pixel(6, 4, image::Rgb([10, 200, 30]));
    picture.save(ws.path("input/photo.jpg")).expect("save jpeg");
    picture
        .save(ws.path("input/photo.webp"))
        .expect("save webp");
    for (name, prefix) in [("photo.jpg", "jpg"), ("photo.webp", "webp")] {
        ws.write_json("graph.json", &load_save_graph(name, prefix));
        let out = ws.run(&["run", "graph.json"]);
        assert_exit(&out, 0);
        let saved = image::open(ws.path(&format!("output/{prefix}_00001_.png")))
            .expect("open saved")
            .to_rgb8();
        assert_eq!(saved.dimensions(), (6, 4), "{name}");
    }
}

#[test]
fn images_over_the_size_limit_are_refused() {
    let ws = Workspace::new();
    ws.write_input_png("big.png", 5, 3, 255);
    ws.write_json("graph.json", &load_save_graph("big.png", "x"));
    let out = ws.run(&["run", "graph.json", "--max-image-size", "4"]);
    assert_exit(&out, 1);
    assert!(
        stderr(&out).contains("exceeds the size limit"),
        "{}",
        stderr(&out)
    );
    assert!(ws.files_in("output").is_empty());
}
