//! Node types registered only with the hidden `--test-nodes` flag, so the end-to-end tests can
//! exercise progress and Ctrl-C without a real model.

use std::time::Duration;

use omnigen_engine::{
    BoxFuture, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType,
    Registry,
};
use serde_json::json;

/// `TestSlowCount`: counts to `steps`, sleeping `delay_ms` per step and reporting progress, then
/// returns the count. An output node, so a graph of just this node runs.
struct SlowCount;

impl NodeType for SlowCount {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("TestSlowCount")
            .display_name("Slow Count (test)")
            .category("testing")
            .description("Counts slowly with progress; only registered with --test-nodes.")
            .output_node()
            .required(InputSpec::int("steps").default_int(10).min(1).max(100_000))
            .required(
                InputSpec::int("delay_ms")
                    .default_int(100)
                    .min(0)
                    .max(60_000),
            )
            .optional(
                InputSpec::string("model")
                    .default_value("")
                    .tooltip("Ignored: a model name for the scale-out routing tests."),
            )
            .optional(
                InputSpec::boolean("preview")
                    .default_value(false)
                    .tooltip("Attach an 8x4 preview image to each step."),
            )
            .output("INT")
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let steps = inputs.get_u64("steps")?;
            let delay = Duration::from_millis(inputs.get_u64("delay_ms")?);
            let preview = inputs.opt_bool("preview")?.unwrap_or(false);
            for step in 0..steps {
                tokio::time::sleep(delay).await;
                if preview {
                    let image = omnigen_engine::Image::from_bytes(1, 4, 8, 3, vec![200; 96])?;
                    ctx.progress_with_preview(step + 1, steps, Some(std::sync::Arc::new(image)))?;
                } else {
                    ctx.progress(step + 1, steps)?;
                }
            }
            Ok(
                NodeOutput::new(vec![omnigen_engine::Value::Int(i128::from(steps))])
                    .with_ui(json!({"text": [format!("counted to {steps}")]})),
            )
        })
    }
}

/// `TestCrash`: kills its own process at once (no unwinding, no cleanup), as a GPU driver fault or
/// the OOM killer would; the scale-out tests use it as a poison job.
struct Crash;

impl NodeType for Crash {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("TestCrash")
            .display_name("Crash the process (test)")
            .category("testing")
            .description("Aborts the process running it; only registered with --test-nodes.")
            .output_node()
            .required(InputSpec::int("code").default_int(1).min(0).max(255))
    }

    fn run<'a>(
        &'a self,
        _inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move { std::process::abort() })
    }
}

/// Registers the test-only node types.
pub fn register(registry: &Registry) {
    registry.register(SlowCount);
    registry.register(Crash);
}
