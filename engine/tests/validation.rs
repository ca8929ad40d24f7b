//! Validation: every ComfyUI error type, all problems at once, partial validity.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use omnigen_engine::{
    validate, Dirs, Fingerprint, NodeId, PromptRequest, Registry, ValidatedPrompt, ValidationReport,
};
use serde_json::{json, Value as Json};

fn registry() -> Arc<Registry> {
    let runs = Runs::default();
    let r = basic_registry(&runs);
    r.register(External {
        state: Arc::new(Mutex::new(Fingerprint::Constant)),
        runs,
    });
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
