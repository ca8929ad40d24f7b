//! Test fixture `describe_hang`: its node's `spec()` never returns, so `describe()` runs into the
//! load timeout. Several of these must not delay startup by one timeout each.

use omnigen_plugin_sdk::prelude::*;

/// A node whose description never ends.
pub struct Endless;
impl Node for Endless {
    const ID: &'static str = "endless";
    fn spec() -> NodeSpec {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    fn run(_ctx: &Context, _inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        Err(NodeError::Failed("never runs".into()))
    }
}

omnigen_plugin_sdk::plugin!(name: "describe_hang", version: "0.1.0", nodes: [Endless]);
