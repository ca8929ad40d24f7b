//! The API format: links, literals, wrappers, metadata, big seeds, lossless round trip, error positions.

use omnigen_engine::{Graph, InputValue, Link, NodeId, ParseError, PromptRequest};
use serde_json::json;

const SAMPLE: &str = r#"{
  "9": {"inputs": {"images": ["8", 0], "filename_prefix": "ComfyUI"}, "class_type": "SaveImage",
        "_meta": {"title": "Save Image", "cnr_id": "comfy-core", "ver": "0.3.64"}},
  "3": {"inputs": {"seed": 18446744073709551615, "cfg": 8.0, "steps": 20, "denoise": 1.00,
                   "model": ["4", 0], "positive": ["6", 0.0], "sizes": {"__value__": [1, 2, 3]},
                   "pair": [4, 0], "triple": ["4", 0, 1], "negidx": ["4", -1], "name": "4"},
        "class_type": "KSampler", "is_changed": ["abc"]},
  "45:12": {"class_type": "X", "inputs": {}}
}"#;

#[test]
fn parses_links_literals_and_metadata() {
    let g = Graph::parse(SAMPLE).unwrap();
    let ids: Vec<&str> = g.nodes().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["9", "3", "45:12"], "document order is kept");

    let save = g.node("9").unwrap();
    assert_eq!(save.class_type, "SaveImage");
    assert_eq!(save.title.as_deref(), Some("Save Image"));
    assert_eq!(
        save.inputs["images"],
        InputValue::Link(Link {
            node: NodeId::from("8"),
            slot: 0
        })
    );

    let k = g.node("3").unwrap();
    assert_eq!(k.is_changed, Some(json!(["abc"])));
    assert_eq!(k.title, None);
    match &k.inputs["seed"] {
        InputValue::Literal(v) => assert_eq!(v.as_u64(), Some(u64::MAX)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        k.inputs["positive"],
        InputValue::Link(Link {
            node: "6".into(),
            slot: 0
        })
    );
    assert_eq!(k.inputs["sizes"], InputValue::Wrapped(json!([1, 2, 3])));
    assert_eq!(k.inputs["pair"], InputValue::Literal(json!([4, 0])));
    assert_eq!(k.inputs["triple"], InputValue::Literal(json!(["4", 0, 1])));
    assert!(matches!(k.inputs["negidx"], InputValue::BadLink(_)));
    assert_eq!(k.inputs["name"], InputValue::Literal(json!("4")));
    let links: Vec<_> = k.links().map(|(name, l)| (name, l.node.as_str())).collect();
    assert_eq!(links, [("model", "4"), ("positive", "6")]);
    assert!(g.node("45:12").unwrap().inputs.is_empty());
}

#[test]
fn round_trip_keeps_order_and_number_text() {
    let g = Graph::parse(SAMPLE).unwrap();
    let compact: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    assert_eq!(g.to_json_string(), compact.to_string());
    let text = g.to_json_string();
    assert!(text.contains("18446744073709551615"));
    assert!(
        text.contains("\"denoise\":1.00"),
        "number text kept: {text}"
    );
    assert!(text.find("\"9\"").unwrap() < text.find("\"3\"").unwrap());
    assert!(
        text.contains("\"cnr_id\":\"comfy-core\""),
        "unknown fields kept"
    );
    assert_eq!(serde_json::to_string(&g).unwrap(), text);
}

#[test]
fn wrapper_is_recognised_and_bare_node_named_prompt_is_not() {
    let r = PromptRequest::parse(
        r#"{"client_id": "abc", "prompt": {"1": {"class_type": "A", "inputs": {}}},
            "extra_data": {"extra_pnginfo": {"workflow": {"id": "w"}}},
            "partial_execution_targets": ["1"], "prompt_id": "p-1"}"#,
    )
    .unwrap();
    assert_eq!(r.prompt.len(), 1);
    assert_eq!(r.client_id.as_deref(), Some("abc"));
    assert_eq!(r.prompt_id.as_deref(), Some("p-1"));
    assert_eq!(r.extra_pnginfo().unwrap()["workflow"]["id"], "w");
    assert_eq!(
        r.extra_data["client_id"], "abc",
        "client_id copied into extra_data"
    );
    assert_eq!(r.partial_execution_targets, Some(vec![NodeId::from("1")]));
    assert!(r.raw().get("client_id").is_some());

    let bare = PromptRequest::parse(r#"{"prompt": {"class_type": "A", "inputs": {}}}"#).unwrap();
    assert_eq!(bare.prompt.node("prompt").unwrap().class_type, "A");
    assert!(bare.extra_data.as_object().unwrap().is_empty());
}

#[test]
fn malformed_json_reports_line_and_column() {
    let text = "{\n  \"1\": {\"class_type\": \"A\"\n  \"2\": 3\n}";
    match Graph::parse(text).unwrap_err() {
        ParseError::Syntax {
            line,
            column,
            message,
        } => {
            assert_eq!((line, column), (3, 3), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let err = PromptRequest::parse("").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    let json = Graph::parse("[1,").unwrap_err().to_comfy_json();
    assert_eq!(json["error"]["type"], "invalid_prompt");
}

#[test]
fn structural_problems_are_all_reported() {
    let err = Graph::parse(
        r#"{"1": 5, "2": {"inputs": {}}, "3": {"class_type": 7}, "4": {"class_type": "A", "inputs": []},
            "5": {"class_type": "A"}}"#,
    )
    .unwrap_err();
    let ParseError::Structure { problems } = err else {
        panic!("{err:?}")
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(problems[0].contains("'1'") && problems[0].contains("object"));
    assert!(problems[1].contains("'2' has no class_type"));
    assert!(problems[2].contains("'3'"));
    assert!(problems[3].contains("inputs must be an object"));
    assert!(Graph::parse("[]").is_err());
    assert!(PromptRequest::parse(r#"{"prompt": {}, "client_id": 5}"#).is_err());
}
