//! The trait a plugin author implements per node, and the builders that describe a node.

use crate::bindings::omnigen::plugin::types::{NodeDescriptor, Port as WitPort, ValueKind};
use crate::params::json_string;
use crate::{Context, Inputs, NamedValue, NodeError, Outputs, Params};

/// One node type. Implement it on a unit struct and list the struct in [`crate::plugin!`].
pub trait Node {
    /// Stable id, unique inside the plugin (`lower_snake_case`); the graph's class_type is
    /// `"<plugin name>/<ID>"`.
    const ID: &'static str;

    /// Describes the node: name, ports, parameters.
    fn spec() -> NodeSpec;

    /// Runs the node. `inputs` holds the connected inputs by port name; `params` holds every
    /// parameter, validated by the host against the declared schema, defaults filled in.
    fn run(ctx: &Context, inputs: Inputs, params: &Params) -> Result<Outputs, NodeError>;
}

/// A typed input or output port.
#[derive(Debug, Clone)]
pub struct Port {
    name: String,
    kind: ValueKind,
    description: String,
    optional: bool,
}

impl Port {
    fn new(name: &str, kind: ValueKind) -> Self {
        Port {
            name: name.to_string(),
            kind,
            description: String::new(),
            optional: false,
        }
    }

    /// An image port (graph type IMAGE).
    pub fn image(name: &str) -> Self {
        Self::new(name, ValueKind::Image)
    }
    /// A mask port (graph type MASK).
    pub fn mask(name: &str) -> Self {
        Self::new(name, ValueKind::Mask)
    }
    /// A text port (graph type STRING).
    pub fn text(name: &str) -> Self {
        Self::new(name, ValueKind::Text)
    }
    /// An integer port (graph type INT).
    pub fn integer(name: &str) -> Self {
        Self::new(name, ValueKind::Integer)
    }
    /// A number port (graph type FLOAT).
    pub fn number(name: &str) -> Self {
        Self::new(name, ValueKind::Number)
    }
    /// A boolean port (graph type BOOLEAN).
    pub fn boolean(name: &str) -> Self {
        Self::new(name, ValueKind::Boolean)
    }
    /// A JSON port (graph type JSON).
    pub fn json(name: &str) -> Self {
        Self::new(name, ValueKind::Json)
    }

    /// Adds a description shown as a tooltip.
    pub fn describe(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// Marks an input as optional: the node runs without it connected.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    fn into_wit(self) -> WitPort {
        WitPort {
            name: self.name,
            kind: self.kind,
            description: self.description,
            optional: self.optional,
        }
    }
}

/// The description of a node: display name, category, ports, parameters, determinism.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    display_name: String,
    description: String,
    category: String,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    /// Each entry is `"name": {schema}` (already JSON).
    params: Vec<String>,
    required: Vec<String>,
    deterministic: bool,
}

impl NodeSpec {
    /// A deterministic node with no ports and no parameters, in the category "plugins".
    pub fn new(display_name: &str) -> Self {
        NodeSpec {
            display_name: display_name.to_string(),
            description: String::new(),
            category: "plugins".to_string(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            params: Vec::new(),
            required: Vec::new(),
            deterministic: true,
        }
    }

    /// A longer description.
    pub fn description(mut self, description: &str) -> Self {
        self.description = description.to_string();
        self
    }

    /// The menu category, e.g. `"image/filters"`.
    pub fn category(mut self, category: &str) -> Self {
        self.category = category.to_string();
        self
    }

    /// Adds an input port.
    pub fn input(mut self, port: Port) -> Self {
        self.inputs.push(port);
        self
    }

    /// Adds an output port.
    pub fn output(mut self, port: Port) -> Self {
        self.outputs.push(port);
        self
    }

    /// Declares that the node's outputs may differ for the same inputs (the engine then never
    /// caches them).
    pub fn nondeterministic(mut self) -> Self {
        self.deterministic = false;
        self
    }

    /// An integer parameter with a default and an inclusive range.
    pub fn int_param(self, name: &str, default: i64, min: i64, max: i64) -> Self {
        self.param(
            name,
            format!(r#"{{"type":"integer","default":{default},"minimum":{min},"maximum":{max}}}"#),
        )
    }

    /// A number parameter with a default and an inclusive range.
    pub fn float_param(self, name: &str, default: f64, min: f64, max: f64) -> Self {
        self.param(
            name,
            format!(
                r#"{{"type":"number","default":{},"minimum":{},"maximum":{}}}"#,
                finite(default),
                finite(min),
                finite(max)
            ),
        )
    }

    /// A boolean parameter with a default.
    pub fn bool_param(self, name: &str, default: bool) -> Self {
        self.param(name, format!(r#"{{"type":"boolean","default":{default}}}"#))
    }

    /// A text parameter with a default; `multiline` asks the UI for a text area.
    pub fn string_param(self, name: &str, default: &str, multiline: bool) -> Self {
        self.param(
            name,
            format!(
                r#"{{"type":"string","default":{},"multiline":{multiline}}}"#,
                json_string(default)
            ),
        )
    }

    /// A parameter that takes one of `choices` (a combo box).
    pub fn choice_param(self, name: &str, choices: &[&str], default: &str) -> Self {
        let list: Vec<String> = choices.iter().map(|c| json_string(c)).collect();
        self.param(
            name,
            format!(
                r#"{{"type":"string","enum":[{}],"default":{}}}"#,
                list.join(","),
                json_string(default)
            ),
        )
    }

    fn param(mut self, name: &str, schema: String) -> Self {
        self.params.push(format!("{}:{schema}", json_string(name)));
        self.required.push(json_string(name));
        self
    }

    fn params_schema(&self) -> String {
        format!(
            r#"{{"type":"object","properties":{{{}}},"required":[{}]}}"#,
            self.params.join(","),
            self.required.join(",")
        )
    }
}

fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Builds the descriptor of node `N`.
pub fn describe_node<N: Node>() -> NodeDescriptor {
    let spec = N::spec();
    let params_schema = spec.params_schema();
    NodeDescriptor {
        id: N::ID.to_string(),
        display_name: spec.display_name,
        description: spec.description,
        category: spec.category,
        inputs: spec.inputs.into_iter().map(Port::into_wit).collect(),
        outputs: spec.outputs.into_iter().map(Port::into_wit).collect(),
        params_schema,
        deterministic: spec.deterministic,
    }
}

/// Runs node `N` on raw inputs and params.
pub fn run_node<N: Node>(
    inputs: Vec<NamedValue>,
    params: &str,
) -> Result<Vec<NamedValue>, NodeError> {
    let params = Params::parse(params).map_err(NodeError::InvalidParams)?;
    let outputs = N::run(&Context::new(), Inputs::new(inputs), &params)?;
    Ok(outputs.into_values())
}
