//! UI workflow → API prompt conversion, rule by rule, on hand-made workflows. The same conversion is
//! checked against the real frontend's own output in `tests/convert_fixtures.rs` (root crate).

use std::sync::Arc;

use omnigen_engine::workflow::{into_api_document, to_api, DocumentKind, WorkflowError};
use omnigen_engine::{
    BoxFuture, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType,
    Registry,
};
use serde_json::{json, Value as Json};

/// A node type that is only a schema (conversion never runs nodes).
struct SchemaOnly(NodeSchema);
impl NodeType for SchemaOnly {
    fn schema(&self) -> NodeSchema {
        self.0.clone()
    }
    fn run<'a>(
        &'a self,
        _: Inputs,
        _: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async { Err(NodeError::new("schema only")) })
    }
}

fn registry() -> Arc<Registry> {
    let r = Registry::new();
    for schema in [
        NodeSchema::new("Load")
            .display_name("Load Image")
            .required(InputSpec::combo("image", ["x.png", "y.png"]).option("image_upload", true))
            .output("IMAGE")
            .output("MASK"),
        NodeSchema::new("Gen")
            .optional(InputSpec::socket("model", "MODEL"))
            .required(InputSpec::int("seed"))
            .required(InputSpec::int("steps"))
            .required(InputSpec::combo("sampler", ["a", "b"]))
            .output("IMAGE"),
        NodeSchema::new("Invert")
            .required(InputSpec::socket("image", "IMAGE"))
            .output("IMAGE"),
        NodeSchema::new("Pair")
            .required(InputSpec::socket("mask", "MASK"))
            .required(InputSpec::socket("image", "IMAGE"))
            .output("IMAGE")
            .output("MASK"),
        NodeSchema::new("Int")
            .required(InputSpec::int("value"))
            .output("INT"),
        NodeSchema::new("List")
            .required(InputSpec::string("items"))
            .output("STRING"),
        NodeSchema::new("Save")
            .output_node()
            .required(InputSpec::socket("images", "IMAGE"))
            .required(InputSpec::string("filename_prefix")),
    ] {
        r.register(SchemaOnly(schema));
    }
    Arc::new(r)
}

fn input(name: &str, ty: &str, link: Option<i64>) -> Json {
    json!({"name": name, "type": ty, "link": link})
}

fn widget_input(name: &str, ty: &str, link: Option<i64>) -> Json {
    json!({"name": name, "type": ty, "link": link, "widget": {"name": name}})
}

fn output(ty: &str) -> Json {
    json!({"name": ty, "type": ty, "links": []})
}

fn node(id: i64, ty: &str, inputs: Json, outputs: Json, widgets: Json) -> Json {
    json!({"id": id, "type": ty, "mode": 0, "inputs": inputs, "outputs": outputs, "widgets_values": widgets, "properties": {}})
}

fn with_mode(mut n: Json, mode: i64) -> Json {
    n["mode"] = json!(mode);
    n
}

fn workflow(nodes: Vec<Json>, links: Json) -> Json {
    json!({"last_node_id": 99, "last_link_id": 99, "nodes": nodes, "links": links, "groups": [{"title": "g", "bounding": [0, 0, 1, 1]}], "version": 0.4})
}

fn load(id: i64) -> Json {
    node(
        id,
        "Load",
        json!([]),
        json!([output("IMAGE"), output("MASK")]),
        json!(["x.png", "image"]),
    )
}

fn save(id: i64, link: Option<i64>) -> Json {
    node(
        id,
        "Save",
        json!([
            input("images", "IMAGE", link),
            widget_input("filename_prefix", "STRING", None)
        ]),
        json!([]),
        json!(["out"]),
    )
}

fn convert(wf: &Json) -> Json {
    to_api(wf, &registry()).expect("converts")
}

#[test]
fn widgets_fill_inputs_skipping_control_and_upload_values() {
    let wf = workflow(
        vec![
            load(1),
            node(
                2,
                "Gen",
                json!([
                    input("model", "MODEL", None),
                    widget_input("seed", "INT", None)
                ]),
                json!([output("IMAGE")]),
                json!([12345678901234567u64, "randomize", 20, "b"]),
            ),
        ],
        json!([]),
    );
    let api = convert(&wf);
    assert_eq!(
        api,
        json!({
            "1": {"inputs": {"image": "x.png"}, "class_type": "Load", "_meta": {"title": "Load Image"}},
            "2": {"inputs": {"seed": 12345678901234567u64, "steps": 20, "sampler": "b"}, "class_type": "Gen", "_meta": {"title": "Gen"}}
        })
    );
}

#[test]
fn named_values_win_and_titles_and_pack_ids_go_to_meta() {
    let mut gen = node(2, "Gen", json!([]), json!([output("IMAGE")]), json!([1]));
    gen["widgets_values_named"] =
        json!({"seed": 7, "control_after_generate": "fixed", "steps": 3, "sampler": "a"});
    gen["title"] = json!("My sampler");
    gen["properties"] = json!({"cnr_id": "comfy-core", "ver": "1.0", "Node name for S&R": "Gen"});
    let api = convert(&workflow(vec![gen], json!([])));
    assert_eq!(
        api["2"]["inputs"],
        json!({"seed": 7, "steps": 3, "sampler": "a"})
    );
    assert_eq!(
        api["2"]["_meta"],
        json!({"title": "My sampler", "cnr_id": "comfy-core", "ver": "1.0"})
    );
}

#[test]
fn a_link_overrides_its_widget_and_arrays_are_wrapped() {
    let wf = workflow(
        vec![
            node(1, "Int", json!([]), json!([output("INT")]), json!([9])),
            node(
                2,
                "Gen",
                json!([
                    widget_input("seed", "INT", None),
                    widget_input("steps", "INT", Some(5))
                ]),
                json!([output("IMAGE")]),
                json!([1, "fixed", 20, "a"]),
            ),
            node(
                3,
                "List",
                json!([]),
                json!([output("STRING")]),
                json!([["a", "b"]]),
            ),
        ],
        json!([[5, 1, 0, 2, 1, "INT"]]),
    );
    let api = convert(&wf);
    assert_eq!(
        api["2"]["inputs"],
        json!({"seed": 1, "steps": ["1", 0], "sampler": "a"})
    );
    assert_eq!(
        api["3"]["inputs"]["items"],
        json!({"__value__": ["a", "b"]})
    );
}

#[test]
fn reroutes_pass_through_and_notes_and_groups_vanish() {
    let wf = workflow(
        vec![
            load(1),
            node(
                2,
                "Reroute",
                json!([input("", "*", Some(1))]),
                json!([output("IMAGE")]),
                json!([]),
            ),
            node(
                3,
                "Reroute",
                json!([input("", "*", Some(2))]),
                json!([output("IMAGE")]),
                json!([]),
            ),
            save(4, Some(3)),
            node(5, "Note", json!([]), json!([]), json!(["remember"])),
            node(6, "MarkdownNote", json!([]), json!([]), json!(["# hi"])),
        ],
        json!([
            [1, 1, 0, 2, 0, "*"],
            [2, 2, 0, 3, 0, "*"],
            [3, 3, 0, 4, 0, "IMAGE"]
        ]),
    );
    let api = convert(&wf);
    assert_eq!(api.as_object().map(|m| m.len()), Some(2));
    assert_eq!(
        api["4"]["inputs"],
        json!({"filename_prefix": "out", "images": ["1", 0]})
    );
}

#[test]
fn a_primitive_node_pushes_its_value_into_the_widget_it_feeds() {
    let wf = workflow(
        vec![
            node(
                1,
                "PrimitiveNode",
                json!([]),
                json!([output("INT")]),
                json!([42, "fixed"]),
            ),
            node(
                2,
                "Gen",
                json!([widget_input("steps", "INT", Some(1))]),
                json!([output("IMAGE")]),
                json!([1, "fixed", 20, "a"]),
            ),
        ],
        json!([[1, 1, 0, 2, 0, "INT"]]),
    );
    let api = convert(&wf);
    assert_eq!(
        api["2"]["inputs"],
        json!({"seed": 1, "steps": 42, "sampler": "a"})
    );
    assert!(api.get("1").is_none());
}

#[test]
fn bypass_rewires_by_slot_then_exact_type_and_mute_drops() {
    // Pair has inputs [mask: MASK, image: IMAGE] and outputs [IMAGE, MASK]: output 0 (IMAGE) cannot take
    // input 0 (MASK), so the first exact IMAGE input (slot 1) is used.
    let pair = node(
        2,
        "Pair",
        json!([
            input("mask", "MASK", Some(2)),
            input("image", "IMAGE", Some(1))
        ]),
        json!([output("IMAGE"), output("MASK")]),
        json!([]),
    );
    let links = json!([
        [1, 1, 0, 2, 1, "IMAGE"],
        [2, 1, 1, 2, 0, "MASK"],
        [3, 2, 0, 3, 0, "IMAGE"]
    ]);
    let bypassed = convert(&workflow(
        vec![load(1), with_mode(pair.clone(), 4), save(3, Some(3))],
        links.clone(),
    ));
    assert_eq!(bypassed["3"]["inputs"]["images"], json!(["1", 0]));
    assert!(bypassed.get("2").is_none());

    let muted = convert(&workflow(
        vec![load(1), with_mode(pair, 2), save(3, Some(3))],
        links,
    ));
    assert!(muted.get("2").is_none());
    assert_eq!(muted["3"]["inputs"], json!({"filename_prefix": "out"}));
}

#[test]
fn subgraph_nodes_get_outer_inner_ids() {
    let def_id = "11111111-2222-4333-8444-555555555555";
    let inner = node(
        1,
        "Invert",
        json!([input("image", "IMAGE", Some(1))]),
        json!([output("IMAGE")]),
        json!([]),
    );
    let wf = json!({
        "nodes": [
            load(2),
            {"id": 10, "type": def_id, "mode": 0, "inputs": [input("image", "IMAGE", Some(7))], "outputs": [output("IMAGE")], "properties": {}},
            save(3, Some(8))
        ],
        "links": [[7, 2, 0, 10, 0, "IMAGE"], [8, 10, 0, 3, 0, "IMAGE"]],
        "definitions": {"subgraphs": [{
            "id": def_id, "name": "inv", "version": 1, "revision": 0,
            "inputNode": {"id": -10, "bounding": [0, 0, 1, 1]}, "outputNode": {"id": -20, "bounding": [0, 0, 1, 1]},
            "inputs": [{"id": "a", "name": "image", "type": "IMAGE", "linkIds": [1]}],
            "outputs": [{"id": "b", "name": "IMAGE", "type": "IMAGE", "linkIds": [2]}],
            "nodes": [inner],
            "links": [
                {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "IMAGE"},
                {"id": 2, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"}
            ]
        }]},
        "version": 0.4
    });
    let api = convert(&wf);
    let keys: Vec<&String> = api.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["2", "3", "10:1"],
        "integer ids first, ascending, as JavaScript orders them"
    );
    assert_eq!(api["10:1"]["inputs"], json!({"image": ["2", 0]}));
    assert_eq!(api["3"]["inputs"]["images"], json!(["10:1", 0]));
}

#[test]
fn schema_one_links_are_objects() {
    let wf = json!({
        "version": 1, "state": {"lastNodeId": 2, "lastLinkId": 1},
        "nodes": [load(1), save(2, Some(1))],
        "links": [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"}]
    });
    assert_eq!(convert(&wf)["2"]["inputs"]["images"], json!(["1", 0]));
}

#[test]
fn unknown_types_and_mismatched_widget_lists_are_errors_naming_the_node() {
    let unknown = workflow(
        vec![node(4, "Mystery", json!([]), json!([]), json!([]))],
        json!([]),
    );
    let err = to_api(&unknown, &registry()).expect_err("unknown");
    assert_eq!(
        err,
        WorkflowError::UnknownNodeType {
            node: "4".into(),
            class_type: "Mystery".into()
        }
    );
    assert!(err.to_string().contains("node 4"), "{err}");

    let short = workflow(
        vec![node(5, "Gen", json!([]), json!([]), json!([1, 20, "a"]))],
        json!([]),
    );
    let err = to_api(&short, &registry()).expect_err("short");
    assert!(
        matches!(&err, WorkflowError::Widgets { node, .. } if node == "5"),
        "{err}"
    );

    // A muted node of an unknown type is simply dropped, as in the editor.
    let muted = workflow(
        vec![with_mode(
            node(4, "Mystery", json!([]), json!([]), json!([])),
            2,
        )],
        json!([]),
    );
    assert_eq!(convert(&muted), json!({}));
}

#[test]
fn broken_links_are_errors_not_panics() {
    let wf = workflow(vec![save(2, Some(77))], json!([]));
    let err = to_api(&wf, &registry()).expect_err("dangling link id");
    assert!(
        matches!(&err, WorkflowError::BrokenLink { node, .. } if node == "2"),
        "{err}"
    );
    let err = to_api(&json!({"nodes": 3}), &registry()).expect_err("shape");
    assert!(matches!(err, WorkflowError::Shape(_)));
}

#[test]
fn documents_are_classified_and_ui_workflows_travel_in_extra_pnginfo() {
    let wf = workflow(vec![load(1)], json!([]));
    let (kind, doc) = into_api_document(wf.clone(), &registry()).expect("converts");
    assert_eq!(kind, DocumentKind::UiWorkflow);
    assert_eq!(doc["extra_data"]["extra_pnginfo"]["workflow"], wf);
    assert_eq!(doc["prompt"]["1"]["class_type"], "Load");

    let api = json!({"1": {"class_type": "Load", "inputs": {"image": "x.png"}}});
    assert_eq!(DocumentKind::of(&api), DocumentKind::ApiGraph);
    assert_eq!(
        DocumentKind::of(&json!({"prompt": api})),
        DocumentKind::PromptBody
    );
    let (_, same) = into_api_document(api.clone(), &registry()).expect("passes");
    assert_eq!(same, api);
}
