//! Test fixture `describe_panic`: its node's `spec()` panics, so `describe()` fails at load. The
//! host must report the panic message (the SDK's panic hook runs in `describe` too).

use omnigen_plugin_sdk::prelude::*;

/// A node whose description cannot be built.
pub struct Broken;
impl Node for Broken {
    const ID: &'static str = "broken";
    fn spec() -> NodeSpec {
        panic!("deliberate panic while describing a node");
    }
    fn run(_ctx: &Context, _inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        Err(NodeError::Failed("never runs".into()))
    }
}

omnigen_plugin_sdk::plugin!(name: "describe_panic", version: "0.1.0", nodes: [Broken]);
