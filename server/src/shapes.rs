//! Jobs rendered in the JSON shapes ComfyUI's routes answer with (§3.10 and §4.1 of the spec).

use serde_json::{json, Map, Value as Json};

use crate::queue::{Job, JobState};

/// ComfyUI's `number`: an integer when it is one (clients compare it as such), else the float.
pub fn number(n: f64) -> Json {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        json!(n as i64)
    } else {
        json!(n)
    }
}

/// `[number, prompt_id, prompt, extra_data, outputs_to_execute]`, as `/queue` and history list a prompt.
pub fn queue_item(job: &Job) -> Json {
    json!([
        number(job.number),
        job.id,
        job.prompt,
        job.extra_data,
        job.outputs
    ])
}

/// One history entry: `{prompt, outputs, status: {status_str, completed, messages}, meta}`.
pub fn history_entry(job: &Job) -> Json {
    let status_str = match job.state {
        JobState::Completed => "success",
        _ => "error",
    };
    let meta: Map<String, Json> = job
        .result
        .outputs
        .as_object()
        .map(|outputs| {
            outputs
                .keys()
                .map(|id| {
                    (
                        id.clone(),
                        json!({"node_id": id, "display_node": id, "parent_node": null, "real_node_id": id}),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "prompt": queue_item(job),
        "outputs": job.result.outputs,
        "status": {
            "status_str": status_str,
            "completed": job.state == JobState::Completed,
            "messages": job.result.messages,
        },
        "meta": meta,
    })
}

/// `{prompt_id: entry, …}` in the order given.
pub fn history_map<'j>(jobs: impl IntoIterator<Item = &'j Job>) -> Json {
    Json::Object(
        jobs.into_iter()
            .map(|job| (job.id.clone(), history_entry(job)))
            .collect(),
    )
}
