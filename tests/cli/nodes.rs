//! `omnigen nodes`: the catalogue in ComfyUI's `/object_info` shape and as a table.

use serde_json::{json, Value as Json};

use crate::support::*;

fn object_info(ws: &Workspace) -> Json {
    let out = ws.run(&["nodes", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_str(&stdout(&out)).expect("object_info JSON")
}

#[test]
fn json_has_object_info_shape_for_every_node() {
    let ws = Workspace::new();
    let info = object_info(&ws);
    let catalogue = info.as_object().expect("an object keyed by class_type");
    for name in [
        "LoadImage",
        "SaveImage",
        "PreviewImage",
        "PrimitiveInt",
        "PrimitiveFloat",
        "PrimitiveString",
        "PrimitiveStringMultiline",
        "PrimitiveBoolean",
    ] {
        let def = catalogue
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(def["name"], name);
        // The six fields the frontend's schema requires, with their types.
        for key in ["display_name", "description", "category", "python_module"] {
            assert!(def[key].is_string(), "{name}.{key} = {}", def[key]);
        }
        assert!(def["output_node"].is_boolean(), "{name}.output_node");
        assert!(def["input"]["required"].is_object(), "{name}.input");
        assert!(
            def["input_order"]["required"].is_array(),
            "{name}.input_order"
        );
        let outputs = def["output"].as_array().expect("output");
        assert_eq!(
            def["output_is_list"].as_array().expect("list").len(),
            outputs.len()
        );
        assert_eq!(
            def["output_name"].as_array().expect("names").len(),
            outputs.len()
        );
    }
    // The test-only node is hidden unless asked for.
    assert!(!catalogue.contains_key("TestSlowCount"));
}

#[test]
fn builtin_definitions_match_comfyui() {
    let ws = Workspace::new();
    let info = object_info(&ws);
    let save = &info["SaveImage"];
    assert_eq!(save["output_node"], true);
    assert_eq!(save["output"], json!([]));
    assert_eq!(save["input"]["required"]["images"][0], "IMAGE");
    assert_eq!(save["input"]["required"]["filename_prefix"][0], "STRING");
    assert_eq!(
        save["input"]["hidden"],
        json!({"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"})
    );
    assert_eq!(
        save["input_order"]["required"],
        json!(["images", "filename_prefix"])
    );
    assert_eq!(info["LoadImage"]["output"], json!(["IMAGE", "MASK"]));
    assert_eq!(
        info["PrimitiveInt"]["python_module"],
        "comfy_extras.nodes_primitive"
    );
}

#[test]
fn seeds_up_to_u64_max_are_exact_in_the_json_text() {
    let ws = Workspace::new();
    let out = ws.run(&["nodes", "--json"]);
    assert_exit(&out, 0);
    // Not rounded through f64: ComfyUI sends 18446744073709551615 and so must we.
    assert!(
        stdout(&out).contains("\"max\":18446744073709551615"),
        "PrimitiveInt max not exact"
    );
}

#[test]
fn table_lists_every_node_with_inputs_and_outputs() {
    let ws = Workspace::new();
    let out = ws.run(&["nodes", "--test-nodes"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let save = text
        .lines()
        .find(|l| l.starts_with("SaveImage "))
        .expect("SaveImage row");
    assert!(save.contains("images: IMAGE"), "{save}");
    assert!(save.contains("(output node)"), "{save}");
    assert!(text.lines().any(|l| l.starts_with("TestSlowCount ")));
    let load = text
        .lines()
        .find(|l| l.starts_with("LoadImage "))
        .expect("LoadImage row");
    assert!(load.contains("-> IMAGE, MASK"), "{load}");
}
