//! `POST /api/omnigen/convert` and `POST /prompt` with a UI workflow: every kind of graph document the
//! CLI reads, and bodies that are none, answered with ComfyUI's error JSON.

mod common;

use common::{png, png_with_text, TestServer};
use serde_json::{json, Value as Json};

/// The editor's saved workflow of `Const(value) -> Show`.
fn ui_workflow(value: i64) -> Json {
    json!({
        "last_node_id": 2, "last_link_id": 1, "version": 0.4,
        "nodes": [
            {"id": 1, "type": "Const", "mode": 0, "inputs": [],
             "outputs": [{"name": "INT", "type": "INT", "links": [1]}],
             "widgets_values": [value], "properties": {}},
            {"id": 2, "type": "Show", "mode": 0, "title": "Result",
             "inputs": [{"name": "value", "type": "INT", "link": 1, "widget": {"name": "value"}}],
             "outputs": [], "widgets_values": [0], "properties": {}}
        ],
        "links": [[1, 1, 0, 2, 0, "INT"]],
        "groups": []
    })
}

/// The API graph [`ui_workflow`] converts to.
fn api_graph(value: i64) -> Json {
    json!({
        "1": {"inputs": {"value": value}, "class_type": "Const", "_meta": {"title": "Const"}},
        "2": {"inputs": {"value": ["1", 0]}, "class_type": "Show", "_meta": {"title": "Result"}}
    })
}

/// A PNG as ComfyUI's SaveImage writes it: Latin-1 `tEXt` chunks `prompt` and `workflow`.
fn comfyui_png(chunks: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, 1, 1);
        encoder.set_color(png::ColorType::Rgb);
        for (keyword, text) in chunks {
            encoder
                .add_text_chunk(keyword.to_string(), text.clone())
                .unwrap();
        }
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[1, 2, 3]).unwrap();
    }
    out
}

async fn convert(s: &TestServer, body: impl Into<reqwest::Body>) -> (u16, Json) {
    let r = s
        .http
        .post(s.url("/api/omnigen/convert"))
        .body(body)
        .send()
        .await
        .unwrap();
    common::status_json(r).await
}

#[tokio::test]
async fn every_kind_of_graph_document_converts() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let wf = ui_workflow(7);
    let api = api_graph(7);
    let both = json!({"prompt": api, "workflow": wf});

    let bare = json!({"1": {"class_type": "Const", "inputs": {"value": 7}}});
    assert_eq!(
        convert(&s, bare.to_string()).await,
        (200, json!({"prompt": bare, "workflow": null})),
        "an API graph passes unchanged"
    );
    let body = json!({"prompt": bare, "extra_data": {"extra_pnginfo": {"workflow": wf}}});
    assert_eq!(
        convert(&s, body.to_string()).await,
        (200, json!({"prompt": bare, "workflow": wf})),
        "a POST /prompt body gives its graph and workflow"
    );
    assert_eq!(convert(&s, wf.to_string()).await, (200, both.clone()));
    let wrapped = json!({"prompt": wf, "client_id": "c"});
    assert_eq!(convert(&s, wrapped.to_string()).await, (200, both.clone()));

    // omnigen's own PNG (iTXt chunks) and ComfyUI's (tEXt), with both chunks: the prompt chunk wins.
    let chunks = [
        ("prompt".to_string(), api.to_string()),
        ("workflow".to_string(), wf.to_string()),
    ];
    assert_eq!(
        convert(&s, png_with_text(2, 2, [0, 0, 0, 255], &chunks)).await,
        (200, both.clone())
    );
    let comfy = comfyui_png(&[("prompt", api.to_string()), ("workflow", wf.to_string())]);
    assert_eq!(convert(&s, comfy).await, (200, both.clone()));
    // A PNG with only the workflow converts it.
    let only_workflow = comfyui_png(&[("workflow", wf.to_string())]);
    assert_eq!(convert(&s, only_workflow).await, (200, both));
    s.stop().await;
}

/// The `error.details` of a 400 answer.
fn details(answer: &(u16, Json)) -> String {
    assert_eq!(answer.0, 400, "{}", answer.1);
    answer.1["error"]["details"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn bodies_that_are_no_graph_get_a_clear_400() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;

    assert!(details(&convert(&s, "").await).contains("send an API graph"));
    let garbage = convert(&s, vec![0xff, 0xfe, 0x00, 0x41]).await;
    assert!(details(&garbage).contains("neither UTF-8 JSON text nor a PNG"));
    let syntax = convert(&s, "{\"1\": {\n").await;
    assert!(details(&syntax).contains("line 2"), "{}", syntax.1);
    let array = convert(&s, "[1, 2]").await;
    assert!(
        details(&array).contains("JSON object of nodes"),
        "{}",
        array.1
    );
    assert_eq!(
        convert(&s, "{}").await.1["error"]["message"],
        "The graph has no nodes"
    );
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(details(&convert(&s, deep).await).contains("recursion limit"));

    // PNGs: cut short, without a graph, with a prompt chunk that is not JSON.
    let whole = comfyui_png(&[("prompt", api_graph(1).to_string())]);
    let cut = convert(&s, whole[..whole.len() / 2].to_vec()).await;
    assert!(
        details(&cut).contains("cannot read the PNG's text chunks"),
        "{}",
        cut.1
    );
    let header_only = convert(&s, b"\x89PNG\r\n\x1a\n".to_vec()).await;
    assert!(details(&header_only).contains("cannot read the PNG's text chunks"));
    assert!(details(&convert(&s, png(2, 2, [0, 0, 0, 255])).await).contains("carries no graph"));
    let bad_chunk = comfyui_png(&[("prompt", "{not json".into())]);
    assert!(details(&convert(&s, bad_chunk).await).contains("`prompt` chunk is not JSON"));

    // A compressed chunk that inflates to far more than it weighs (64 MiB of spaces in ~64 KiB) is
    // refused by the decoder's text limit, not inflated.
    let mut bomb = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bomb, 1, 1);
        encoder.set_color(png::ColorType::Rgb);
        encoder
            .add_ztxt_chunk("prompt".into(), " ".repeat(64 << 20))
            .unwrap();
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[0, 0, 0]).unwrap();
    }
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let refused = convert(&s, bomb).await;
    assert!(
        details(&refused).contains("cannot read the PNG's text chunks"),
        "{}",
        refused.1
    );

    // A workflow that does not convert names the node, as validation errors do.
    let mut unknown = ui_workflow(1);
    unknown["nodes"][1]["type"] = json!("Missing");
    let (status, answer) = convert(&s, unknown.to_string()).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["type"], "invalid_workflow");
    assert_eq!(answer["error"]["extra_info"]["node_id"], "2");
    assert_eq!(answer["node_errors"]["2"]["class_type"], "Missing");
    assert!(answer["node_errors"]["2"]["errors"][0]["details"]
        .as_str()
        .unwrap()
        .contains("not in the node catalogue"));
    let mut surplus = ui_workflow(1);
    surplus["nodes"][0]["widgets_values"] = json!([1, 2, 3]);
    let (status, answer) = convert(&s, surplus.to_string()).await;
    assert_eq!(
        (status, answer["node_errors"]["1"]["class_type"].clone()),
        (400, json!("Const"))
    );

    // Over the body limit: 413, in the same JSON shape.
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(common_limit() + 1));
    let (status, answer) = convert(&s, big).await;
    assert_eq!(status, 413);
    assert_eq!(answer["error"]["type"], "payload_too_large");

    // The server is still fine.
    assert_eq!(convert(&s, ui_workflow(3).to_string()).await.0, 200);
    s.stop().await;
}

fn common_limit() -> usize {
    omnigen_server::ServerConfig::new(std::path::Path::new(".")).max_body_bytes
}

#[tokio::test]
async fn prompt_runs_a_ui_workflow_and_keeps_it_for_the_png() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let id = s
        .queue(json!({"prompt": ui_workflow(41), "client_id": "c"}))
        .await;
    let entry = s.finished(&id).await;
    assert_eq!(entry["outputs"]["2"]["value"], json!(["41"]), "{entry}");
    assert_eq!(
        entry["prompt"][2],
        api_graph(41),
        "the converted graph is what ran"
    );
    assert_eq!(
        entry["prompt"][3]["extra_pnginfo"]["workflow"],
        ui_workflow(41),
        "the workflow is kept for SaveImage"
    );

    // A request's own extra_pnginfo.workflow is not replaced.
    let own = json!({"nodes": [], "id": "mine"});
    let id = s
        .queue(
            json!({"prompt": ui_workflow(42), "extra_data": {"extra_pnginfo": {"workflow": own}}}),
        )
        .await;
    let entry = s.finished(&id).await;
    assert_eq!(entry["prompt"][3]["extra_pnginfo"]["workflow"], own);

    let mut unknown = ui_workflow(1);
    unknown["nodes"][0]["type"] = json!("Missing");
    let (status, answer) = s.post("/prompt", json!({"prompt": unknown})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["node_errors"]["1"]["class_type"], "Missing");
    s.stop().await;
}
