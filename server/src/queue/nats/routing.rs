//! Which worker may run a job (docs/scale-out.md, "Routing"): a job whose graph uses a plugin's node
//! goes only to a worker that has that plugin with the front's hash; a job naming a model goes
//! preferably to a live worker that has it loaded. Pure functions over the graph, the claim and the
//! live workers, so the rules are tested without NATS.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use super::protocol::{Announcement, ClaimRequest, PluginBuild};

/// Inputs that name a model by convention (ComfyUI's loaders and ours): a constant string in one
/// of them makes `<class_type>:<value>` one of the job's model keys.
pub const MODEL_INPUTS: [&str; 3] = ["model", "ckpt_name", "unet_name"];

/// The node types a graph (API format) uses.
pub fn class_types(prompt: &Json) -> BTreeSet<String> {
    nodes(prompt)
        .filter_map(|node| node["class_type"].as_str().map(String::from))
        .collect()
}

/// The job's model keys: `<class_type>:<value>` for each constant string in a [`MODEL_INPUTS`]
/// input (a linked input is an array, not a string).
pub fn model_keys(prompt: &Json) -> Vec<String> {
    let mut keys = BTreeSet::new();
    for node in nodes(prompt) {
        let class = node["class_type"].as_str().unwrap_or_default();
        for name in MODEL_INPUTS {
            match node["inputs"][name].as_str() {
                Some(value) if !value.trim().is_empty() => {
                    keys.insert(format!("{class}:{value}"));
                }
                _ => {}
            }
        }
    }
    keys.into_iter().collect()
}

/// Every constant string input of the graph (candidate input file names).
pub fn string_inputs(prompt: &Json) -> BTreeSet<String> {
    nodes(prompt)
        .filter_map(|node| node["inputs"].as_object())
        .flat_map(|inputs| inputs.values())
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn nodes(prompt: &Json) -> impl Iterator<Item = &Json> {
    prompt.as_object().into_iter().flat_map(|m| m.values())
}

/// The plugin builds (of the front's catalogue, `builds`) whose node types the graph uses.
pub fn required_plugins<'a>(prompt: &Json, builds: &'a [PluginBuild]) -> Vec<&'a PluginBuild> {
    let used = class_types(prompt);
    builds
        .iter()
        .filter(|b| b.class_types.iter().any(|c| used.contains(c)))
        .collect()
}

/// What the front answers a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// This worker may run it.
    Run,
    /// Not this worker, for the reason given: it is given back for another.
    NotForYou(String),
}

/// Whether `claim`'s worker should run the job with graph `prompt`.
///
/// - Every plugin build the graph needs (`required`) must be among the worker's, same name and
///   sha256; otherwise not for it, however long the job has waited.
/// - If the job names models and the worker has none of them loaded, while another live worker that
///   could run it (plugins) has one loaded and is idle, it is left to that one, unless `prefer` is
///   `false` (the job has waited long enough for it).
pub fn decide(
    prompt: &Json,
    required: &[&PluginBuild],
    claim: &ClaimRequest,
    live: &[Announcement],
    prefer: bool,
) -> Decision {
    let missing: Vec<String> = required
        .iter()
        .filter(|need| !has_build(&claim.plugins, need))
        .map(|need| format!("{} ({})", need.name, short(&need.sha256)))
        .collect();
    if !missing.is_empty() {
        return Decision::NotForYou(format!("needs plugin {}", missing.join(", ")));
    }
    if !prefer {
        return Decision::Run;
    }
    let wanted = model_keys(prompt);
    let loaded = |models: &[String]| wanted.iter().any(|m| models.contains(m));
    if wanted.is_empty() || loaded(&claim.models) {
        return Decision::Run;
    }
    let better = live.iter().find(|w| {
        w.id != claim.worker_id
            && !w.leaving
            && w.running.is_none()
            && loaded(&w.models)
            && required.iter().all(|need| has_build(&w.plugins, need))
    });
    match better {
        Some(w) => Decision::NotForYou(format!("worker {} has its model loaded", w.name)),
        None => Decision::Run,
    }
}

fn has_build(builds: &[PluginBuild], need: &PluginBuild) -> bool {
    builds
        .iter()
        .any(|b| b.name == need.name && b.sha256 == need.sha256)
}

fn short(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(name: &str, sha: &str) -> PluginBuild {
        PluginBuild {
            name: name.into(),
            version: "0.1.0".into(),
            sha256: sha.into(),
            class_types: vec![format!("{name}/node")],
        }
    }

    fn claim(id: &str, plugins: Vec<PluginBuild>, models: &[&str]) -> ClaimRequest {
        ClaimRequest {
            id: "p".into(),
            worker: id.into(),
            worker_id: id.into(),
            plugins,
            models: models.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn worker(id: &str, plugins: Vec<PluginBuild>, models: &[&str], busy: bool) -> Announcement {
        Announcement {
            id: id.into(),
            name: id.into(),
            device: "cpu".into(),
            ram_free: None,
            ram_total: None,
            vram_free: None,
            models: models.iter().map(|m| m.to_string()).collect(),
            plugins,
            running: busy.then(|| "other".to_string()),
            every_ms: 1000,
            ttl_ms: 5000,
            leaving: false,
        }
    }

    #[test]
    fn graphs_name_their_node_types_models_and_strings() {
        let prompt = json!({
            "1": {"class_type": "LoadOmniGen", "inputs": {"model": "Shitao/OmniGen-v1", "device": "auto"}},
            "2": {"class_type": "OmniGenSample", "inputs": {"model": ["1", 0], "steps": 4}},
            "3": {"class_type": "edges/canny", "inputs": {"image": "in.png"}},
            "4": {"class_type": "Other", "inputs": {"model": ""}}
        });
        assert_eq!(
            class_types(&prompt).into_iter().collect::<Vec<_>>(),
            ["LoadOmniGen", "OmniGenSample", "Other", "edges/canny"]
        );
        assert_eq!(model_keys(&prompt), ["LoadOmniGen:Shitao/OmniGen-v1"]);
        assert!(string_inputs(&prompt).contains("in.png"));
    }

    #[test]
    fn a_plugin_job_goes_only_to_a_worker_with_the_same_build() {
        let builds = [build("edges", "aaaa"), build("color", "cccc")];
        let prompt = json!({"1": {"class_type": "edges/node", "inputs": {}}});
        let required = required_plugins(&prompt, &builds);
        assert_eq!(required, [&builds[0]]);
        let run = |plugins| decide(&prompt, &required, &claim("w", plugins, &[]), &[], true);
        assert_eq!(run(vec![build("edges", "aaaa")]), Decision::Run);
        assert!(matches!(run(vec![]), Decision::NotForYou(r) if r.contains("edges")));
        // Another build of the same plugin is not the one the front validated against.
        assert!(matches!(
            run(vec![build("edges", "bbbb")]),
            Decision::NotForYou(_)
        ));
        // A plain job runs anywhere.
        let plain = json!({"1": {"class_type": "SaveImage", "inputs": {}}});
        let none = required_plugins(&plain, &builds);
        assert_eq!(
            decide(&plain, &none, &claim("w", vec![], &[]), &[], true),
            Decision::Run
        );
    }

    #[test]
    fn an_idle_worker_with_the_model_loaded_is_preferred_for_a_while() {
        let prompt = json!({"1": {"class_type": "Load", "inputs": {"model": "m1"}}});
        let cold = claim("cold", vec![], &[]);
        let warm_idle = worker("warm", vec![], &["Load:m1"], false);
        let warm_busy = worker("warm", vec![], &["Load:m1"], true);
        assert!(matches!(
            decide(&prompt, &[], &cold, std::slice::from_ref(&warm_idle), true),
            Decision::NotForYou(r) if r.contains("warm")
        ));
        // Busy, or waited long enough: the cold worker takes it.
        assert_eq!(
            decide(&prompt, &[], &cold, &[warm_busy], true),
            Decision::Run
        );
        assert_eq!(
            decide(&prompt, &[], &cold, std::slice::from_ref(&warm_idle), false),
            Decision::Run
        );
        // The warm worker itself runs it.
        let warm = claim("warm", vec![], &["Load:m1"]);
        assert_eq!(
            decide(&prompt, &[], &warm, &[warm_idle], true),
            Decision::Run
        );
    }
}
