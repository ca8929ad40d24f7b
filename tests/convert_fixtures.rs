//! The conversion checked against the frontend itself: every `tests/fixtures/workflows/NAME.ui.json`
//! (what ComfyUI's editor saved) converts to `NAME.api.json` (what the editor's `graphToPrompt` queued
//! for it). The pairs are recorded by `ui/oracle/oracle.mjs` in headless Chromium (ORACLE.md in the
//! fixtures folder). Each is checked twice: as saved (1.58 writes `widgets_values_named`) and with only
//! the positional `widgets_values` older editors write.

#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

use std::path::PathBuf;

use serde_json::Value as Json;
use support::*;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/workflows")
}

#[test]
fn every_recorded_workflow_converts_as_the_frontend_does() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures folder")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".ui.json").map(str::to_string))
        .collect();
    names.sort();
    assert!(
        names.len() >= 18,
        "expected the example graphs and the crafted cases, found {names:?}"
    );
    let ws = Workspace::new();
    let mut wrong = Vec::new();
    for name in &names {
        let ui_path = fixtures().join(format!("{name}.ui.json"));
        let ui: Json =
            serde_json::from_str(&std::fs::read_to_string(&ui_path).expect("ui fixture"))
                .expect("ui fixture is JSON");
        let want: Json = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{name}.api.json")))
                .expect("api fixture"),
        )
        .expect("api fixture is JSON");
        let mut positional = ui.clone();
        strip_named_values(&mut positional);
        assert_ne!(
            positional, ui,
            "{name}: the editor saved no widgets_values_named"
        );
        for (variant, doc) in [("as saved", &ui), ("positional only", &positional)] {
            let file = ws.write_json("workflow.json", doc);
            let out = ws.run(&["convert", file.to_str().expect("utf-8 path")]);
            match serde_json::from_str::<Json>(&stdout(&out)) {
                // Key order too (`preserve_order`): nodes and inputs come out as the editor orders them.
                Ok(got)
                    if serde_json::to_string(&got).ok() == serde_json::to_string(&want).ok() => {}
                Ok(got) => wrong.push(format!(
                    "{name} ({variant}): got\n{}\nwant\n{}",
                    serde_json::to_string(&got).unwrap_or_default(),
                    serde_json::to_string(&want).unwrap_or_default()
                )),
                Err(_) => wrong.push(format!(
                    "{name} ({variant}): convert failed: {}",
                    stderr(&out)
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        names.len(),
        wrong.join("\n\n")
    );
}

/// Removes `widgets_values_named` from every node, subgraph definitions included.
fn strip_named_values(doc: &mut Json) {
    match doc {
        Json::Object(map) => {
            map.remove("widgets_values_named");
            map.values_mut().for_each(strip_named_values);
        }
        Json::Array(items) => items.iter_mut().for_each(strip_named_values),
        _ => {}
    }
}

/// The editor templates (`graphs/workflows/NAME.json`, made by `ui/oracle/templates.mjs`) are the
/// example graphs: each converts to `graphs/NAME.json`'s nodes, class types and inputs, and every
/// example graph has one.
#[test]
fn every_template_converts_to_its_example_graph() {
    let graphs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("graphs");
    let json_names = |dir: &std::path::Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("folder")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
            .collect();
        names.sort();
        names
    };
    let names = json_names(&graphs);
    assert_eq!(
        json_names(&graphs.join("workflows")),
        names,
        "one template per example graph"
    );
    let read = |path: PathBuf| -> Json {
        serde_json::from_str(&std::fs::read_to_string(&path).expect("file")).expect("JSON")
    };
    // The editor fills in the optional widgets a graph leaves out, with their defaults.
    let catalogue: Json = serde_json::from_str(&stdout(&ws_nodes())).expect("catalogue");
    let with_defaults = |graph: &Json| -> Json {
        let nodes = graph.as_object().expect("API graph").iter().map(|(id, n)| {
            let class = n["class_type"].as_str().unwrap_or_default();
            let mut inputs = n["inputs"].as_object().cloned().unwrap_or_default();
            if let Some(optional) = catalogue[class]["input"]["optional"].as_object() {
                for (input, spec) in optional {
                    if let Some(default) = spec[1].get("default") {
                        inputs.entry(input.clone()).or_insert(default.clone());
                    }
                }
            }
            // What the engine runs: class type and inputs (titles are the editor's to keep).
            let node = serde_json::json!({"class_type": class, "inputs": inputs});
            (id.clone(), node)
        });
        Json::Object(nodes.collect())
    };
    let ws = Workspace::new();
    for name in &names {
        let template = graphs.join("workflows").join(format!("{name}.json"));
        let out = ws.run(&["convert", template.to_str().expect("utf-8 path")]);
        let got: Json = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|_| panic!("{name}: convert failed: {}", stderr(&out)));
        let want = read(graphs.join(format!("{name}.json")));
        let (got, want) = (with_defaults(&got), with_defaults(&want));
        assert_eq!(as_numbers(&got), as_numbers(&want), "{name}");
    }
}

fn ws_nodes() -> std::process::Output {
    Workspace::new().run(&["nodes", "--json"])
}

/// Numbers as JavaScript sees them (`1.0` and `1` are the same number once the editor saved them).
fn as_numbers(doc: &Json) -> Json {
    match doc {
        Json::Number(n) => n.as_f64().map_or(doc.clone(), |f| serde_json::json!(f)),
        Json::Array(items) => Json::Array(items.iter().map(as_numbers).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), as_numbers(v)))
                .collect(),
        ),
        _ => doc.clone(),
    }
}
