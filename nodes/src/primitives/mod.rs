//! Primitive value nodes, named and shaped like ComfyUI's `comfy_extras/nodes_primitive.py`:
//! `PrimitiveInt`, `PrimitiveFloat`, `PrimitiveString`, `PrimitiveStringMultiline` and
//! `PrimitiveBoolean`. Each has one widget input `value` and returns it unchanged, so a graph can
//! feed one constant into several nodes (and `--set` can change it in one place).

use omnigen_engine::{
    BoxFuture, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema, NodeType,
};

/// The ComfyUI module these nodes come from (the frontend groups nodes by it).
const PYTHON_MODULE: &str = "comfy_extras.nodes_primitive";
const CATEGORY: &str = "utils/primitive";

/// Which primitive a [`Primitive`] node produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimitiveKind {
    /// `PrimitiveInt`: an INT from −(2^63−1) up to 2^64−1, so any seed fits.
    Int,
    /// `PrimitiveFloat`.
    Float,
    /// `PrimitiveString`: a one-line STRING.
    String,
    /// `PrimitiveStringMultiline`: a multi-line STRING.
    StringMultiline,
    /// `PrimitiveBoolean`.
    Boolean,
}

impl PrimitiveKind {
    /// All primitive kinds, in catalogue order.
    pub const ALL: [PrimitiveKind; 5] = [
        PrimitiveKind::String,
        PrimitiveKind::StringMultiline,
        PrimitiveKind::Int,
        PrimitiveKind::Float,
        PrimitiveKind::Boolean,
    ];
}

/// A primitive value node.
#[derive(Debug, Clone, Copy)]
pub struct Primitive(pub PrimitiveKind);

impl NodeType for Primitive {
    fn schema(&self) -> NodeSchema {
        let (name, display, input, output) = match self.0 {
            PrimitiveKind::Int => (
                "PrimitiveInt",
                "Int",
                InputSpec::int("value")
                    .min(-i64::MAX)
                    .max(u64::MAX)
                    .option("control_after_generate", true),
                "INT",
            ),
            PrimitiveKind::Float => (
                "PrimitiveFloat",
                "Float",
                InputSpec::float("value")
                    .min(-(i64::MAX as f64))
                    .max(i64::MAX as f64),
                "FLOAT",
            ),
            PrimitiveKind::String => (
                "PrimitiveString",
                "String",
                InputSpec::string("value"),
                "STRING",
            ),
            PrimitiveKind::StringMultiline => (
                "PrimitiveStringMultiline",
                "String (Multiline)",
                InputSpec::string("value").multiline(),
                "STRING",
            ),
            PrimitiveKind::Boolean => (
                "PrimitiveBoolean",
                "Boolean",
                InputSpec::boolean("value"),
                "BOOLEAN",
            ),
        };
        NodeSchema::new(name)
            .display_name(display)
            .category(CATEGORY)
            .python_module(PYTHON_MODULE)
            .required(input)
            .output(output)
    }

    fn run<'a>(
        &'a self,
        mut inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            // The engine has already coerced the literal to the declared type.
            let value = inputs
                .take("value")
                .ok_or_else(|| NodeError::input("value", "missing"))?;
            Ok(NodeOutput::new(vec![value]))
        })
    }
}
