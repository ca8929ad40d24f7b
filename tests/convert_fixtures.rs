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
