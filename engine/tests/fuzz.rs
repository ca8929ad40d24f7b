//! Arbitrary input must never panic parse, validate or execute: a seeded random generator of prompt-like
//! JSON (and of corrupted JSON text), with no extra dependencies.

mod common;

use std::sync::Arc;

use common::*;
use omnigen_engine::{validate, Dirs, Executor, ExecutorConfig, Graph, PromptRequest, RunOptions};
use serde_json::{json, Map, Value as Json};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const CLASSES: &[&str] = &[
    "Const", "Add", "Sink", "Fail", "Checked", "Img", "Unknown", "",
];
const INPUTS: &[&str] = &["value", "a", "b", "name", "__value__", ""];

fn scalar(rng: &mut Rng, ids: &[String]) -> Json {
    match rng.below(12) {
        0 => Json::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => serde_json::from_str("18446744073709551616").unwrap(),
        4 => json!((rng.next() as f64) / 7.0),
        5 => json!(-1.5),
        6 => json!("text"),
        7 => json!([rng.pick(ids), rng.below(4)]),
        8 => json!([rng.pick(ids), -1]),
        9 => json!([rng.below(5), 0]),
        10 => json!({"__value__": [1, [rng.pick(ids), 0]]}),
        _ => json!([rng.pick(ids), 0, 1]),
    }
}

fn value(rng: &mut Rng, ids: &[String], depth: u32) -> Json {
    if depth == 0 || rng.below(3) > 0 {
        return scalar(rng, ids);
    }
    if rng.below(2) == 0 {
        Json::Array(
            (0..rng.below(4))
                .map(|_| value(rng, ids, depth - 1))
                .collect(),
        )
    } else {
        Json::Object(
            (0..rng.below(4))
                .map(|_| (rng.pick(INPUTS).to_string(), value(rng, ids, depth - 1)))
                .collect(),
        )
    }
}

fn prompt(rng: &mut Rng) -> Json {
    let n = rng.below(8) as usize;
    let ids: Vec<String> = (0..n.max(1)).map(|i| format!("{}", i + 1)).collect();
    let mut nodes = Map::new();
    for id in ids.iter().take(n) {
        let node = match rng.below(10) {
            0 => value(rng, &ids, 2),
            _ => {
                let mut inputs = Map::new();
                for _ in 0..rng.below(4) {
                    inputs.insert(rng.pick(INPUTS).to_string(), scalar(rng, &ids));
                }
                let mut node = json!({"class_type": rng.pick(CLASSES), "inputs": inputs});
                if rng.below(5) == 0 {
                    node["is_changed"] = value(rng, &ids, 1);
                }
                if rng.below(5) == 0 {
                    node["_meta"] = value(rng, &ids, 1);
                }
                node
            }
        };
        nodes.insert(id.clone(), node);
    }
    if rng.below(4) == 0 {
        json!({"prompt": Json::Object(nodes), "extra_data": value(rng, &ids, 1),
               "partial_execution_targets": value(rng, &ids, 1), "client_id": scalar(rng, &ids)})
    } else {
        Json::Object(nodes)
    }
}

fn corrupt(rng: &mut Rng, text: &str) -> String {
    let mut bytes: Vec<char> = text.chars().collect();
    for _ in 0..=rng.below(3) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.below(bytes.len() as u64) as usize;
        match rng.below(3) {
            0 => {
                bytes.truncate(at);
            }
            1 => {
                bytes.remove(at);
            }
            _ => bytes.insert(
                at,
                *rng.pick(&['{', '}', '[', ']', '"', ',', ':', '0', 'é']),
            ),
        }
    }
    bytes.into_iter().collect()
}

#[tokio::test]
async fn arbitrary_input_never_panics() {
    let runs = Runs::default();
    let registry = basic_registry(&runs);
    registry.unregister("Panic");
    let exec = Executor::new(
        Arc::clone(&registry),
        ExecutorConfig {
            max_concurrency: 2,
            ..Default::default()
        },
    );
    let dirs = Arc::new(Dirs::default());
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut parsed, mut valid, mut ran) = (0, 0, 0);
    for round in 0..4000 {
        let doc = prompt(&mut rng);
        let text = if round % 3 == 0 {
            corrupt(&mut rng, &doc.to_string())
        } else {
            doc.to_string()
        };
        let Ok(request) = PromptRequest::parse(&text) else {
            continue;
        };
        parsed += 1;
        // Writing a parsed graph back and parsing it again gives the same graph.
        let again = Graph::parse(&request.prompt.to_json_string()).expect("round trip parses");
        assert_eq!(again, request.prompt);
        let Ok(validated) = validate(&request, &registry, &dirs) else {
            continue;
        };
        valid += 1;
        let report = exec
            .run_validated(&request, validated, RunOptions::default())
            .await;
        assert!(!report.prompt_id.is_empty());
        ran += 1;
    }
    // The generator must actually reach every stage, or the test proves little.
    assert!(
        parsed > 500 && valid > 20 && ran == valid,
        "parsed {parsed}, valid {valid}, ran {ran}"
    );
}
