//! Validation: every ComfyUI error type, all problems at once, partial validity.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use omnigen_engine::{
    validate, BoxFuture, Dirs, Fingerprint, InputSpec, Inputs, NodeContext, NodeError, NodeId,
    NodeOutput, NodeSchema, NodeType, PromptRequest, Registry, ValidatedPrompt, ValidationError,
    ValidationReport, Value,
};
use serde_json::{json, Value as Json};

/// `SaveImg {images: IMAGE, filename_prefix: STRING}`, an output node shaped like ComfyUI's SaveImage.
struct SaveImg;
impl NodeType for SaveImg {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("SaveImg")
            .output_node()
            .required(InputSpec::socket("images", "IMAGE"))
            .required(InputSpec::string("filename_prefix").default_value("t"))
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Ok(NodeOutput::default()) })
    }
}

/// `Union {value: "INT,FLOAT", media: "IMAGE,MASK"} -> INT`: comma-union sockets.
struct Union;
impl NodeType for Union {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("Union")
            .optional(InputSpec::socket("value", "INT,FLOAT").min(0))
            .optional(InputSpec::socket("media", "IMAGE,MASK"))
            .output("INT")
    }
    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { Ok(NodeOutput::new(vec![Value::Int(0)])) })
    }
}

fn registry() -> Arc<Registry> {
    let runs = Runs::default();
    let r = basic_registry(&runs);
    r.register(External {
        state: Arc::new(Mutex::new(Fingerprint::Constant)),
        runs,
    });
    r.register(SaveImg);
    r.register(Union);
    r
}

fn check(prompt: Json) -> Result<ValidatedPrompt, ValidationReport> {
    let request = PromptRequest::from_json(prompt).unwrap();
    validate(&request, &registry(), &Arc::new(Dirs::default()))
}

fn error_types(report: &ValidationReport, node: &str) -> Vec<String> {
    report.node_errors[node]
        .errors
        .iter()
        .map(|e| e.kind.as_str().to_string())
        .collect()
}

#[test]
fn a_valid_prompt_resolves_ancestors_of_outputs_only() {
    let v = check(json!({
        "1": {"class_type": "Const", "inputs": {"value": 2}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": "3"}},
        "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
        "4": {"class_type": "Const", "inputs": {"value": "not checked: no output needs it"}}
    }))
    .unwrap();
    assert_eq!(v.outputs, vec![NodeId::from("3")]);
    let ids: Vec<&str> = v.nodes.keys().map(NodeId::as_str).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert!(v.node_errors.is_empty());
}

#[test]
fn unknown_class_types_are_all_reported() {
    let r = check(json!({
        "1": {"class_type": "Nope", "inputs": {}, "_meta": {"title": "My Nope"}},
        "2": {"class_type": "AlsoNope", "inputs": {}},
        "3": {"class_type": "Sink", "inputs": {"value": 1}}
    }))
    .unwrap_err();
    let j = r.to_json();
    assert_eq!(j["error"]["type"], "missing_node_type");
    assert_eq!(
        j["error"]["message"],
        "Cannot execute because node Nope does not exist."
    );
    assert_eq!(j["error"]["details"], "Node ID '#1'");
    assert_eq!(
        j["error"]["extra_info"],
        json!({"node_id": "1", "class_type": "Nope", "node_title": "My Nope"})
    );
    assert_eq!(r.node_errors.len(), 2);
    assert_eq!(j["node_errors"]["2"]["class_type"], "AlsoNope");
}

#[test]
fn no_outputs() {
    let r = check(json!({"1": {"class_type": "Const", "inputs": {"value": 1}}})).unwrap_err();
    assert_eq!(
        r.to_json(),
        json!({"error": {"type": "prompt_no_outputs", "message": "Prompt has no outputs", "details": "",
                         "extra_info": {}}, "node_errors": {}})
    );
    let r = check(json!({})).unwrap_err();
    assert_eq!(r.error.kind.as_str(), "prompt_no_outputs");
}

#[test]
fn every_input_problem_is_reported_at_once() {
    let r = check(json!({
        "1": {"class_type": "Const", "inputs": {"value": -5000}},
        "2": {"class_type": "Const", "inputs": {"value": 18446744073709551616u128}},
        "3": {"class_type": "Const", "inputs": {"value": "abc"}},
        "4": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["99", 0]}},
        "5": {"class_type": "Add", "inputs": {"a": ["2", 3], "b": ["img", 0]}},
        "6": {"class_type": "Add", "inputs": {"a": ["3", 0], "b": [1, 2, 3]}},
        "7": {"class_type": "Add", "inputs": {"a": ["3", -1]}},
        "8": {"class_type": "External", "inputs": {"name": "x", "mode": "c", "scale": 2.5, "flag": "maybe"}},
        "9": {"class_type": "Checked", "inputs": {"value": 3}},
        "img": {"class_type": "Img", "inputs": {}},
        "s4": {"class_type": "Sink", "inputs": {"value": ["4", 0]}},
        "s5": {"class_type": "Sink", "inputs": {"value": ["5", 0]}},
        "s6": {"class_type": "Sink", "inputs": {"value": ["6", 0]}},
        "s7": {"class_type": "Sink", "inputs": {"value": ["7", 0]}},
        "s8": {"class_type": "Sink", "inputs": {"value": ["8", 0]}},
        "s9": {"class_type": "Sink", "inputs": {"value": ["9", 0]}}
    }))
    .unwrap_err();
    assert_eq!(r.error.kind.as_str(), "prompt_outputs_failed_validation");
    assert_eq!(r.error.message, "Prompt outputs failed validation");
    assert_eq!(error_types(&r, "1"), ["value_smaller_than_min"]);
    assert_eq!(
        r.node_errors["1"].errors[0].message,
        "Value -5000 smaller than min of -1000"
    );
    assert_eq!(error_types(&r, "2"), ["value_bigger_than_max"]);
    assert_eq!(
        r.node_errors["2"].errors[0].message,
        "Value 18446744073709551616 bigger than max of 18446744073709551615"
    );
    assert_eq!(error_types(&r, "3"), ["invalid_input_type"]);
    assert_eq!(
        r.node_errors["3"].errors[0].message,
        "Failed to convert an input value to a INT value"
    );
    assert_eq!(
        error_types(&r, "4"),
        ["bad_linked_input"],
        "link to a missing node"
    );
    assert_eq!(
        error_types(&r, "5"),
        ["bad_linked_input", "return_type_mismatch"]
    );
    assert!(r.node_errors["5"].errors[1]
        .details
        .contains("received_type(IMAGE) mismatch input_type(INT)"));
    assert_eq!(
        error_types(&r, "6"),
        ["bad_linked_input"],
        "3-element array"
    );
    assert_eq!(
        error_types(&r, "7"),
        ["bad_linked_input", "required_input_missing"]
    );
    assert_eq!(
        error_types(&r, "8"),
        [
            "value_not_in_list",
            "value_bigger_than_max",
            "invalid_input_type"
        ]
    );
    assert_eq!(
        r.node_errors["8"].errors[0].details,
        "mode: 'c' not in ['a', 'b']"
    );
    assert_eq!(error_types(&r, "9"), ["custom_validation_failed"]);
    assert_eq!(r.node_errors["9"].errors[0].details, "value - 3 is odd");
    assert_eq!(
        r.node_errors["9"].dependent_outputs,
        vec![NodeId::from("s9")]
    );
    assert!(
        !r.node_errors.contains_key("s4"),
        "a sink with a bad ancestor has no errors of its own"
    );

    // The JSON shape the frontend reads.
    let j = r.to_json();
    let e = &j["node_errors"]["1"];
    assert_eq!(e["class_type"], "Const");
    assert_eq!(e["dependent_outputs"], json!(["s4"]));
    assert_eq!(e["errors"][0]["details"], "value");
    assert_eq!(e["errors"][0]["extra_info"]["input_name"], "value");
    assert_eq!(e["errors"][0]["extra_info"]["received_value"], -5000);
    assert_eq!(e["errors"][0]["extra_info"]["input_config"][0], "INT");
    assert!(r
        .to_text()
        .contains("node 9 (Checked): Custom validation failed for node: value - 3 is odd"));
}

#[test]
fn dependency_cycles_are_found() {
    let r = check(json!({
        "1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
        "3": {"class_type": "Add", "inputs": {"a": ["3", 0], "b": 1}},
        "s": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
        "t": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}
    }))
    .unwrap_err();
    for n in ["1", "2", "3"] {
        assert_eq!(error_types(&r, n), ["dependency_cycle"], "node {n}");
    }
    assert_eq!(
        r.node_errors["3"].dependent_outputs,
        vec![NodeId::from("t")]
    );
}

#[test]
fn valid_outputs_survive_invalid_ones_and_targets_restrict() {
    let prompt = json!({
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "ok": {"class_type": "Sink", "inputs": {"value": ["1", 0]}},
        "bad": {"class_type": "Sink", "inputs": {}}
    });
    let v = check(prompt.clone()).unwrap();
    assert_eq!(v.outputs, vec![NodeId::from("ok")]);
    assert_eq!(
        v.node_errors["bad"].errors[0].kind.as_str(),
        "required_input_missing"
    );
    assert_eq!(
        v.node_errors_json()["bad"]["dependent_outputs"],
        json!(["bad"])
    );

    let v = check(json!({"prompt": prompt, "partial_execution_targets": ["ok"]})).unwrap();
    assert!(
        v.node_errors.is_empty(),
        "the invalid output is not targeted"
    );
    let r = check(
        json!({"prompt": {"1": {"class_type": "Sink", "inputs": {"value": 1}}},
                         "partial_execution_targets": ["2"]}),
    )
    .unwrap_err();
    assert_eq!(r.error.kind.as_str(), "prompt_no_outputs");
}

#[test]
fn literals_are_coerced_like_comfyui() {
    let v = check(json!({
        "1": {"class_type": "Const", "inputs": {"value": 18446744073709551615u64}},
        "2": {"class_type": "Const", "inputs": {"value": "12"}},
        "3": {"class_type": "Const", "inputs": {"value": 3.9}},
        "4": {"class_type": "External", "inputs": {"name": 5, "mode": "b", "scale": "0.5", "flag": 1}},
        "s": {"class_type": "Sink", "inputs": {"value": {"__value__": [["1", 0], 2]}}},
        "t1": {"class_type": "Sink", "inputs": {"value": ["1", 0]}},
        "t2": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
        "t3": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
        "t4": {"class_type": "Sink", "inputs": {"value": ["4", 0]}}
    }))
    .unwrap();
    let constant = |id: &str, name: &str| {
        v.nodes[id]
            .constant_inputs()
            .get(name)
            .map(|v| v.summary())
            .unwrap()
    };
    assert_eq!(constant("1", "value").to_string(), "18446744073709551615");
    assert_eq!(constant("2", "value"), json!(12));
    assert_eq!(constant("3", "value"), json!(3));
    assert_eq!(constant("4", "name"), json!("5"));
    assert_eq!(constant("4", "scale"), json!(0.5));
    assert_eq!(constant("4", "flag"), json!(true));
    assert_eq!(
        constant("s", "value"),
        json!([["1", 0], 2]),
        "wrapped list is a literal, not a link"
    );
}

/// The errors validation reports for one literal given to `input` of a node of `class` (other inputs
/// valid), found through a Sink so the node is needed.
fn literal_errors(class: &str, input: &str, literal: Json) -> Vec<ValidationError> {
    let mut inputs = match class {
        "Const" => json!({"value": 1}),
        "External" => json!({"name": "n", "mode": "a"}),
        "SaveImg" => json!({"images": ["img", 0], "filename_prefix": "t"}),
        "Union" => json!({}),
        other => panic!("no defaults for {other}"),
    };
    inputs[input] = literal;
    let mut prompt = json!({
        "img": {"class_type": "Img", "inputs": {}},
        "n": {"class_type": class, "inputs": inputs}
    });
    if class != "SaveImg" {
        prompt["s"] = json!({"class_type": "Sink", "inputs": {"value": ["n", 0]}});
    }
    match check(prompt) {
        Ok(_) => Vec::new(),
        Err(r) => r
            .node_errors
            .get("n")
            .map(|e| e.errors.clone())
            .unwrap_or_default(),
    }
}

fn kinds(errors: &[ValidationError]) -> Vec<&str> {
    errors.iter().map(|e| e.kind.as_str()).collect()
}

/// The constant a literal becomes, when it is accepted.
fn coerced(class: &str, input: &str, literal: Json) -> Json {
    let mut inputs = match class {
        "Const" => json!({"value": 1}),
        "External" => json!({"name": "n", "mode": "a"}),
        _ => json!({}),
    };
    inputs[input] = literal;
    let v = check(json!({
        "n": {"class_type": class, "inputs": inputs},
        "s": {"class_type": "Sink", "inputs": {"value": ["n", 0]}}
    }))
    .unwrap_or_else(|r| panic!("{}", r.to_text()));
    v.nodes["n"].constant_inputs().get(input).unwrap().summary()
}

#[test]
fn the_issue_graph_fails_validation_not_the_run() {
    // `[1, 0]` is not a link (the id must be a string), and nothing typed in a prompt is an IMAGE.
    let r = check(json!({
        "1": {"class_type": "Img", "inputs": {}},
        "2": {"class_type": "SaveImg", "inputs": {"images": [1, 0], "filename_prefix": "t"}}
    }))
    .unwrap_err();
    assert_eq!(r.error.kind.as_str(), "prompt_outputs_failed_validation");
    let e = &r.node_errors["2"].errors;
    assert_eq!(kinds(e), ["bad_linked_input"]);
    assert_eq!(
        e[0].message,
        "Bad linked input, must be a length-2 list of [string, int]"
    );
    assert_eq!(
        e[0].details,
        "images: [1,0] is not a link: the source node id must be a string, as in [\"1\", 0]"
    );
    assert_eq!(e[0].extra_info["input_name"], "images");
    assert_eq!(e[0].extra_info["received_value"], json!([1, 0]));
    assert_eq!(e[0].extra_info["input_config"], json!(["IMAGE"]));
}

#[test]
fn unwrapped_arrays_that_are_not_links_are_bad_links_for_every_input_type() {
    for (class, input) in [
        ("Const", "value"),
        ("External", "name"),
        ("External", "mode"),
        ("External", "scale"),
        ("External", "flag"),
        ("SaveImg", "images"),
    ] {
        let e = literal_errors(class, input, json!([1, 0]));
        assert_eq!(kinds(&e), ["bad_linked_input"], "{class}.{input}");
        let e = literal_errors(class, input, json!(["img", "0"]));
        assert_eq!(kinds(&e), ["bad_linked_input"], "{class}.{input}");
        assert!(
            e[0].details
                .ends_with("is not a link: the output index must be a number"),
            "{}",
            e[0].details
        );
        let e = literal_errors(class, input, json!([1, 2, 3]));
        assert_eq!(kinds(&e), ["bad_linked_input"], "{class}.{input}");
    }
    // Even `*` takes an array only wrapped: a bare one is read as a (bad) link.
    let r = check(json!({"s": {"class_type": "Sink", "inputs": {"value": [1, 0]}}})).unwrap_err();
    assert_eq!(error_types(&r, "s"), ["bad_linked_input"]);
}

#[test]
fn literals_never_satisfy_a_socket_only_type() {
    for literal in [
        json!("a.png"),
        json!(5),
        json!(0.5),
        json!(true),
        json!(null),
        json!({"a": 1}),
        json!({"__value__": [1, 0]}),
    ] {
        let e = literal_errors("SaveImg", "images", literal.clone());
        assert_eq!(kinds(&e), ["invalid_input_type"], "{literal}");
        assert_eq!(
            e[0].message,
            "Failed to convert an input value to a IMAGE value"
        );
        assert!(
            e[0].details.starts_with("images, ")
                && e[0].details.ends_with(
                    "IMAGE values come only from other nodes: link this input to a node's output, as in [\"4\", 0]"
                ),
            "{}",
            e[0].details
        );
        assert_eq!(e[0].extra_info["input_name"], "images");
        assert_eq!(e[0].extra_info["input_config"], json!(["IMAGE"]));
        assert!(e[0].extra_info["exception_message"].is_string());
    }
}

#[test]
fn a_literal_on_a_socket_is_reported_with_every_other_error() {
    let r = check(json!({
        "1": {"class_type": "Const", "inputs": {"value": "x"}},
        "2": {"class_type": "SaveImg", "inputs": {"images": "a.png", "filename_prefix": {"a": 1}}},
        "3": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}
    }))
    .unwrap_err();
    assert_eq!(error_types(&r, "1"), ["invalid_input_type"]);
    assert_eq!(
        error_types(&r, "2"),
        ["invalid_input_type", "invalid_input_type"]
    );
    assert_eq!(
        r.node_errors["2"].errors[0].extra_info["input_name"],
        "images"
    );
    assert_eq!(
        r.node_errors["2"].errors[1].extra_info["input_name"],
        "filename_prefix"
    );
}

#[test]
fn the_any_type_takes_every_literal_as_json() {
    for literal in [json!("x"), json!(3), json!(null), json!({"a": 1})] {
        let v = check(json!({"s": {"class_type": "Sink", "inputs": {"value": literal.clone()}}}))
            .unwrap();
        assert_eq!(
            v.nodes["s"]
                .constant_inputs()
                .get("value")
                .unwrap()
                .summary(),
            literal
        );
    }
}

#[test]
fn union_sockets_take_a_literal_as_their_first_primitive_member_that_accepts_it() {
    assert_eq!(coerced("Union", "value", json!("3")), json!(3));
    assert_eq!(
        coerced("Union", "value", json!(2.5)),
        json!(2),
        "INT comes first and truncates"
    );
    assert_eq!(
        coerced("Union", "value", json!("2.5")),
        json!(2.5),
        "int('2.5') fails, float() takes it"
    );
    let e = literal_errors("Union", "value", json!("x"));
    assert_eq!(kinds(&e), ["invalid_input_type"]);
    assert_eq!(
        e[0].message,
        "Failed to convert an input value to a INT,FLOAT value"
    );
    let e = literal_errors("Union", "value", json!(-1));
    assert_eq!(kinds(&e), ["value_smaller_than_min"]);
    let e = literal_errors("Union", "media", json!("x"));
    assert_eq!(kinds(&e), ["invalid_input_type"], "no primitive member");
}

#[test]
fn int_literals_follow_python_int() {
    assert_eq!(coerced("Const", "value", json!(" 7 ")), json!(7));
    assert_eq!(coerced("Const", "value", json!("-3")), json!(-3));
    assert_eq!(coerced("Const", "value", json!(9.99)), json!(9));
    assert_eq!(coerced("Const", "value", json!(true)), json!(1));
    for bad in [
        json!("3.5"),
        json!("1e3"),
        json!("abc"),
        json!(""),
        json!(null),
        json!({"a": 1}),
        json!({"__value__": [1]}),
    ] {
        let e = literal_errors("Const", "value", bad.clone());
        assert_eq!(kinds(&e), ["invalid_input_type"], "{bad}");
        assert_eq!(
            e[0].message,
            "Failed to convert an input value to a INT value"
        );
        // As in ComfyUI, a wrapped value is reported unwrapped.
        let received = bad.get("__value__").unwrap_or(&bad);
        assert_eq!(&e[0].extra_info["received_value"], received);
    }
    let e = literal_errors("Const", "value", json!("-5000"));
    assert_eq!(
        kinds(&e),
        ["value_smaller_than_min"],
        "a converted string is range-checked"
    );
}

#[test]
fn float_literals_follow_python_float() {
    assert_eq!(coerced("External", "scale", json!(" 0.25 ")), json!(0.25));
    assert_eq!(coerced("External", "scale", json!(1)), json!(1.0));
    assert_eq!(coerced("External", "scale", json!(false)), json!(0.0));
    for bad in [
        json!("half"),
        json!(null),
        json!({"a": 1}),
        json!({"__value__": [0.5]}),
    ] {
        let e = literal_errors("External", "scale", bad.clone());
        assert_eq!(kinds(&e), ["invalid_input_type"], "{bad}");
        assert_eq!(
            e[0].message,
            "Failed to convert an input value to a FLOAT value"
        );
    }
    let e = literal_errors("External", "scale", json!("2"));
    assert_eq!(kinds(&e), ["value_bigger_than_max"]);
}

#[test]
fn string_literals_take_text_numbers_and_booleans_only() {
    assert_eq!(coerced("External", "name", json!(5)), json!("5"));
    assert_eq!(coerced("External", "name", json!(2.5)), json!("2.5"));
    assert_eq!(
        coerced("External", "name", json!(true)),
        json!("True"),
        "Python's str(True)"
    );
    // Python's str() would print a repr of these; a graph that sends them is wrong, so they are refused.
    for bad in [json!(null), json!({"a": 1}), json!({"__value__": ["a"]})] {
        let e = literal_errors("External", "name", bad.clone());
        assert_eq!(kinds(&e), ["invalid_input_type"], "{bad}");
        assert_eq!(
            e[0].message,
            "Failed to convert an input value to a STRING value"
        );
    }
}

#[test]
fn boolean_literals_take_booleans_numbers_and_true_false_strings() {
    assert_eq!(coerced("External", "flag", json!(0)), json!(false));
    assert_eq!(coerced("External", "flag", json!(2.5)), json!(true));
    assert_eq!(coerced("External", "flag", json!("TRUE")), json!(true));
    for bad in [
        json!("yes"),
        json!(""),
        json!(null),
        json!({"a": 1}),
        json!({"__value__": [true]}),
    ] {
        let e = literal_errors("External", "flag", bad.clone());
        assert_eq!(kinds(&e), ["invalid_input_type"], "{bad}");
        assert_eq!(
            e[0].message,
            "Failed to convert an input value to a BOOLEAN value"
        );
    }
}

#[test]
fn combo_literals_must_be_options() {
    assert_eq!(coerced("External", "mode", json!("b")), json!("b"));
    for bad in [
        json!("c"),
        json!(null),
        json!({"a": 1}),
        json!({"__value__": ["a"]}),
        json!(1),
    ] {
        let e = literal_errors("External", "mode", bad.clone());
        assert_eq!(kinds(&e), ["value_not_in_list"], "{bad}");
        assert_eq!(e[0].message, "Value not in list");
        // As in ComfyUI, a wrapped value is reported unwrapped.
        let received = bad.get("__value__").unwrap_or(&bad);
        assert_eq!(&e[0].extra_info["received_value"], received);
    }
}

#[test]
fn validation_produces_the_plan_sources_first_and_links_as_indices() {
    // Written consumer-first: the plan still puts every node after the nodes it links to (its sources
    // in the order its inputs name them), and the rest in prompt order.
    let v = check(json!({
        "s": {"class_type": "Sink", "inputs": {"value": ["2", 0]}},
        "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["0", 0]}},
        "1": {"class_type": "Const", "inputs": {"value": 1}},
        "0": {"class_type": "Const", "inputs": {"value": 2}},
        "t": {"class_type": "Sink", "inputs": {"value": 3}}
    }))
    .unwrap();
    let order: Vec<&str> = v.nodes.keys().map(NodeId::as_str).collect();
    assert_eq!(order, ["1", "0", "2", "s", "t"]);
    let add = &v.nodes["2"];
    let links: Vec<(&str, usize, usize)> = add
        .links()
        .iter()
        .map(|l| (l.input.as_str(), l.source, l.slot))
        .collect();
    assert_eq!(links, [("a", 0, 0), ("b", 1, 0)]);
    assert_eq!(add.dependencies(), [0, 1]);
    assert_eq!(add.dependents(), [3]);
    assert!(add.constant_inputs().is_empty());
    assert_eq!(v.nodes.index_of("s"), Some(3));
    assert_eq!(v.outputs, [NodeId::from("s"), NodeId::from("t")]);
}
