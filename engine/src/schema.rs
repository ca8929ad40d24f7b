//! Node schemas: what a node type accepts and returns, and their ComfyUI `/object_info` rendering.

use serde_json::{json, Map, Value as Json};

use crate::dirs::Dirs;

/// A number bound or step (`min`, `max`, `step`, `round`). Integers keep full `u64`/`i64` precision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer bound.
    Int(i128),
    /// A floating-point bound.
    Float(f64),
}

impl Number {
    /// The bound as `f64` (for comparisons with float values).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The bound as JSON.
    pub fn to_json(self) -> Json {
        match self {
            Number::Int(i) => crate::value::int_to_json(i),
            Number::Float(f) => json!(f),
        }
    }
}

macro_rules! number_from_int {
    ($($t:ty),*) => {$(impl From<$t> for Number { fn from(v: $t) -> Self { Number::Int(v as i128) } })*};
}
number_from_int!(i8, i16, i32, i64, i128, u8, u16, u32, u64, usize);
impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::Float(v)
    }
}
impl From<f32> for Number {
    fn from(v: f32) -> Self {
        Number::Float(v as f64)
    }
}

/// The declared type of an input.
#[derive(Debug, Clone, PartialEq)]
pub enum InputType {
    /// `INT` widget.
    Int,
    /// `FLOAT` widget.
    Float,
    /// `STRING` widget.
    String,
    /// `BOOLEAN` widget.
    Boolean,
    /// A combo: the value must be one of these options (rendered as the legacy `[[options…], {…}]` form).
    Combo(Vec<String>),
    /// A combo of the input folder's files with one of these extensions (lower-case, no dot), listed
    /// afresh whenever the catalogue is rendered ([`crate::Dirs::input_files`]), as ComfyUI's
    /// `LoadImage` lists its `image`. Any text is accepted: the list is what the editor offers, not a
    /// limit, so a relative path to a file outside it still works; the node checks that the file exists.
    InputFile(Vec<String>),
    /// A socket type such as `"IMAGE"`, `"MODEL"`, `"LATENT"`, or `"*"` (any). Comma unions
    /// (`"INT,FLOAT"`) match by overlap.
    Socket(String),
}

impl InputType {
    /// A socket of the given type name. `"INT"`, `"FLOAT"`, `"STRING"` and `"BOOLEAN"` become widgets.
    pub fn named(name: impl Into<String>) -> Self {
        let name = name.into();
        match name.as_str() {
            "INT" => InputType::Int,
            "FLOAT" => InputType::Float,
            "STRING" => InputType::String,
            "BOOLEAN" => InputType::Boolean,
            _ => InputType::Socket(name),
        }
    }

    /// The type name used for link type checks: `INT`, `FLOAT`, `STRING`, `BOOLEAN`, `COMBO`, or the socket
    /// type.
    pub fn type_name(&self) -> &str {
        match self {
            InputType::Int => "INT",
            InputType::Float => "FLOAT",
            InputType::String => "STRING",
            InputType::Boolean => "BOOLEAN",
            InputType::Combo(_) | InputType::InputFile(_) => "COMBO",
            InputType::Socket(s) => s,
        }
    }

    /// Whether a literal typed in the prompt is allowed (widget types); sockets normally take links.
    pub fn is_widget(&self) -> bool {
        !matches!(self, InputType::Socket(_))
    }
}

/// Options of one input (the second element of a ComfyUI InputSpec tuple).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOptions {
    /// Default value shown by the frontend and used when an optional input is absent.
    pub default: Option<Json>,
    /// Smallest allowed value (INT/FLOAT).
    pub min: Option<Number>,
    /// Largest allowed value (INT/FLOAT).
    pub max: Option<Number>,
    /// Widget step (INT/FLOAT).
    pub step: Option<Number>,
    /// Rounding (FLOAT).
    pub round: Option<Number>,
    /// Multi-line text box (STRING).
    pub multiline: bool,
    /// Help text.
    pub tooltip: Option<String>,
    /// Always a socket, never a widget.
    pub force_input: bool,
    /// ComfyUI's lazy input flag (accepted and advertised; the executor evaluates all inputs eagerly).
    pub lazy: bool,
    /// Any further options, copied verbatim (`control_after_generate`, `image_upload`, `display`, …).
    pub extra: Map<String, Json>,
}

impl InputOptions {
    fn to_json(&self) -> Map<String, Json> {
        let mut m = Map::new();
        if let Some(d) = &self.default {
            m.insert("default".into(), d.clone());
        }
        for (key, n) in [
            ("min", self.min),
            ("max", self.max),
            ("step", self.step),
            ("round", self.round),
        ] {
            if let Some(n) = n {
                m.insert(key.into(), n.to_json());
            }
        }
        if self.multiline {
            m.insert("multiline".into(), json!(true));
        }
        if self.force_input {
            m.insert("forceInput".into(), json!(true));
        }
        if self.lazy {
            m.insert("lazy".into(), json!(true));
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        if let Some(t) = &self.tooltip {
            m.insert("tooltip".into(), json!(t));
        }
        m
    }
}

/// One declared input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Input name, the key in the prompt's `inputs` object.
    pub name: String,
    /// Declared type.
    pub kind: InputType,
    /// Options.
    pub options: InputOptions,
}

impl InputSpec {
    /// An input of the given type with no options.
    pub fn new(name: impl Into<String>, kind: InputType) -> Self {
        InputSpec {
            name: name.into(),
            kind,
            options: InputOptions::default(),
        }
    }
    /// An `INT` widget.
    pub fn int(name: impl Into<String>) -> Self {
        Self::new(name, InputType::Int)
    }
    /// A `FLOAT` widget.
    pub fn float(name: impl Into<String>) -> Self {
        Self::new(name, InputType::Float)
    }
    /// A `STRING` widget.
    pub fn string(name: impl Into<String>) -> Self {
        Self::new(name, InputType::String)
    }
    /// A `BOOLEAN` widget.
    pub fn boolean(name: impl Into<String>) -> Self {
        Self::new(name, InputType::Boolean)
    }
    /// A combo over the given options.
    pub fn combo<S: Into<String>>(
        name: impl Into<String>,
        options: impl IntoIterator<Item = S>,
    ) -> Self {
        Self::new(
            name,
            InputType::Combo(options.into_iter().map(Into::into).collect()),
        )
    }
    /// A combo of the input folder's files with one of `extensions` (see [`InputType::InputFile`]).
    pub fn input_file<S: Into<String>>(
        name: impl Into<String>,
        extensions: impl IntoIterator<Item = S>,
    ) -> Self {
        let extensions = extensions
            .into_iter()
            .map(|e| e.into().to_ascii_lowercase());
        Self::new(name, InputType::InputFile(extensions.collect()))
    }
    /// A socket of the given type (`"IMAGE"`, `"MODEL"`, `"*"` …).
    pub fn socket(name: impl Into<String>, type_name: impl Into<String>) -> Self {
        Self::new(name, InputType::named(type_name))
    }

    /// Sets the default value.
    pub fn default_value(mut self, value: impl Into<Json>) -> Self {
        self.options.default = Some(value.into());
        self
    }
    /// Sets the default to an integer (keeps full `u64` precision).
    pub fn default_int(mut self, value: impl Into<Number>) -> Self {
        self.options.default = Some(value.into().to_json());
        self
    }
    /// Sets `min`.
    pub fn min(mut self, value: impl Into<Number>) -> Self {
        self.options.min = Some(value.into());
        self
    }
    /// Sets `max`.
    pub fn max(mut self, value: impl Into<Number>) -> Self {
        self.options.max = Some(value.into());
        self
    }
    /// Sets `step`.
    pub fn step(mut self, value: impl Into<Number>) -> Self {
        self.options.step = Some(value.into());
        self
    }
    /// Sets `round`.
    pub fn round(mut self, value: impl Into<Number>) -> Self {
        self.options.round = Some(value.into());
        self
    }
    /// Marks a STRING as multi-line.
    pub fn multiline(mut self) -> Self {
        self.options.multiline = true;
        self
    }
    /// Sets the tooltip.
    pub fn tooltip(mut self, text: impl Into<String>) -> Self {
        self.options.tooltip = Some(text.into());
        self
    }
    /// Forces a socket instead of a widget.
    pub fn force_input(mut self) -> Self {
        self.options.force_input = true;
        self
    }
    /// Adds any other option verbatim (e.g. `("control_after_generate", true)`).
    pub fn option(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.options.extra.insert(key.into(), value.into());
        self
    }

    /// The ComfyUI InputSpec tuple: `["INT", {…}]`, `[["a","b"], {…}]`, or `["MODEL"]` without options.
    /// A combo of input files lists none here (error reports); [`InputSpec::to_json_in`] lists them.
    pub fn to_json(&self) -> Json {
        self.render(None)
    }

    /// The InputSpec tuple as `/object_info` sends it: a combo of input files lists the files of
    /// `dirs.input` now.
    pub fn to_json_in(&self, dirs: &Dirs) -> Json {
        self.render(Some(dirs))
    }

    fn render(&self, dirs: Option<&Dirs>) -> Json {
        let first = match &self.kind {
            InputType::Combo(options) => json!(options),
            InputType::InputFile(extensions) => {
                json!(dirs.map_or_else(Vec::new, |d| d.input_files(extensions)))
            }
            other => json!(other.type_name()),
        };
        let opts = self.options.to_json();
        if opts.is_empty() && matches!(self.kind, InputType::Socket(_)) {
            json!([first])
        } else {
            json!([first, Json::Object(opts)])
        }
    }
}

/// What fills a hidden input (never sent in the prompt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HiddenKind {
    /// `PROMPT`: the whole prompt. Advertised in `/object_info`; nodes read it with `ctx.prompt()` (one
    /// shared copy per run), it is not copied into their inputs.
    Prompt,
    /// `EXTRA_PNGINFO`: `extra_data.extra_pnginfo`. Advertised in `/object_info`; nodes read it with
    /// `ctx.extra_pnginfo()`, it is not copied into their inputs.
    ExtraPngInfo,
    /// `UNIQUE_ID`: the node's id (string). Also makes the node's cache key include its id.
    UniqueId,
    /// Any other magic string; filled from `extra_data[<lowercase name>]` when present.
    Other(String),
}

impl HiddenKind {
    /// The magic string, e.g. `"PROMPT"`.
    pub fn magic(&self) -> &str {
        match self {
            HiddenKind::Prompt => "PROMPT",
            HiddenKind::ExtraPngInfo => "EXTRA_PNGINFO",
            HiddenKind::UniqueId => "UNIQUE_ID",
            HiddenKind::Other(s) => s,
        }
    }
    /// Parses a magic string.
    pub fn from_magic(s: &str) -> Self {
        match s {
            "PROMPT" => HiddenKind::Prompt,
            "EXTRA_PNGINFO" => HiddenKind::ExtraPngInfo,
            "UNIQUE_ID" => HiddenKind::UniqueId,
            other => HiddenKind::Other(other.to_string()),
        }
    }
}

/// A hidden input: name and what fills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiddenInput {
    /// Input name as the node sees it.
    pub name: String,
    /// What the executor injects.
    pub kind: HiddenKind,
}

/// One declared output.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Output type name (`"IMAGE"`, `"LATENT"`, `"*"` …).
    pub type_name: String,
    /// Display name (defaults to the type name).
    pub name: String,
    /// ComfyUI `OUTPUT_IS_LIST`.
    pub is_list: bool,
    /// Help text.
    pub tooltip: Option<String>,
}

/// Everything the engine and the frontend need to know about a node type.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSchema {
    /// The class_type, key in the registry and in `/object_info`.
    pub name: String,
    /// Human-readable name.
    pub display_name: String,
    /// Slash-separated menu path, e.g. `"image/transform"`.
    pub category: String,
    /// One-paragraph description.
    pub description: String,
    /// The pack this node comes from (`"nodes"`, `"custom_nodes.<pack>"` …); the frontend groups by it.
    pub python_module: String,
    /// Whether this node is a sink that drives execution (SaveImage, PreviewImage …).
    pub output_node: bool,
    /// Whether results depend on something beyond the inputs (the cache key then includes the node id).
    pub not_idempotent: bool,
    /// Marked deprecated in the catalogue.
    pub deprecated: bool,
    /// Marked experimental in the catalogue.
    pub experimental: bool,
    /// Required inputs, in order.
    pub required: Vec<InputSpec>,
    /// Optional inputs, in order.
    pub optional: Vec<InputSpec>,
    /// Hidden inputs, in order.
    pub hidden: Vec<HiddenInput>,
    /// Outputs, in slot order.
    pub outputs: Vec<OutputSpec>,
}

impl NodeSchema {
    /// A schema with the given class_type; display name = class_type, category `"utils"`, module `"nodes"`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        NodeSchema {
            display_name: name.clone(),
            name,
            category: "utils".into(),
            description: String::new(),
            python_module: "nodes".into(),
            output_node: false,
            not_idempotent: false,
            deprecated: false,
            experimental: false,
            required: Vec::new(),
            optional: Vec::new(),
            hidden: Vec::new(),
            outputs: Vec::new(),
        }
    }
    /// Sets the display name.
    pub fn display_name(mut self, s: impl Into<String>) -> Self {
        self.display_name = s.into();
        self
    }
    /// Sets the category.
    pub fn category(mut self, s: impl Into<String>) -> Self {
        self.category = s.into();
        self
    }
    /// Sets the description.
    pub fn description(mut self, s: impl Into<String>) -> Self {
        self.description = s.into();
        self
    }
    /// Sets the python_module (pack identity).
    pub fn python_module(mut self, s: impl Into<String>) -> Self {
        self.python_module = s.into();
        self
    }
    /// Marks this node as an output node.
    pub fn output_node(mut self) -> Self {
        self.output_node = true;
        self
    }
    /// Marks this node as not idempotent.
    pub fn not_idempotent(mut self) -> Self {
        self.not_idempotent = true;
        self
    }
    /// Adds a required input.
    pub fn required(mut self, input: InputSpec) -> Self {
        self.required.push(input);
        self
    }
    /// Adds an optional input.
    pub fn optional(mut self, input: InputSpec) -> Self {
        self.optional.push(input);
        self
    }
    /// Adds a hidden input filled with `magic` (`"PROMPT"`, `"EXTRA_PNGINFO"`, `"UNIQUE_ID"` …).
    pub fn hidden(mut self, name: impl Into<String>, magic: &str) -> Self {
        self.hidden.push(HiddenInput {
            name: name.into(),
            kind: HiddenKind::from_magic(magic),
        });
        self
    }
    /// Adds an output whose display name is its type name.
    pub fn output(self, type_name: impl Into<String>) -> Self {
        let t = type_name.into();
        self.named_output(t.clone(), t)
    }
    /// Adds an output with a display name.
    pub fn named_output(mut self, type_name: impl Into<String>, name: impl Into<String>) -> Self {
        self.outputs.push(OutputSpec {
            type_name: type_name.into(),
            name: name.into(),
            is_list: false,
            tooltip: None,
        });
        self
    }
    /// Adds a list output (`OUTPUT_IS_LIST`).
    pub fn list_output(mut self, type_name: impl Into<String>, name: impl Into<String>) -> Self {
        self.outputs.push(OutputSpec {
            type_name: type_name.into(),
            name: name.into(),
            is_list: true,
            tooltip: None,
        });
        self
    }

    /// Finds a required or optional input by name; the bool is `true` when required.
    pub fn input(&self, name: &str) -> Option<(&InputSpec, bool)> {
        self.required
            .iter()
            .find(|i| i.name == name)
            .map(|i| (i, true))
            .or_else(|| {
                self.optional
                    .iter()
                    .find(|i| i.name == name)
                    .map(|i| (i, false))
            })
    }

    /// Whether the node has a hidden `UNIQUE_ID` input.
    pub fn has_unique_id(&self) -> bool {
        self.hidden.iter().any(|h| h.kind == HiddenKind::UniqueId)
    }

    /// This node's entry in ComfyUI's `/object_info`, field for field as ComfyUI sends it; combos of
    /// input files list the files of `dirs.input` at the time of the call.
    pub fn to_object_info(&self, dirs: &Dirs) -> Json {
        let section = |specs: &[InputSpec]| -> Json {
            Json::Object(
                specs
                    .iter()
                    .map(|s| (s.name.clone(), s.to_json_in(dirs)))
                    .collect(),
            )
        };
        let names = |specs: &[InputSpec]| -> Json {
            json!(specs.iter().map(|s| &s.name).collect::<Vec<_>>())
        };

        let mut input = Map::new();
        let mut order = Map::new();
        input.insert("required".into(), section(&self.required));
        order.insert("required".into(), names(&self.required));
        if !self.optional.is_empty() {
            input.insert("optional".into(), section(&self.optional));
            order.insert("optional".into(), names(&self.optional));
        }
        if !self.hidden.is_empty() {
            input.insert(
                "hidden".into(),
                Json::Object(
                    self.hidden
                        .iter()
                        .map(|h| (h.name.clone(), json!(h.kind.magic())))
                        .collect(),
                ),
            );
            order.insert(
                "hidden".into(),
                json!(self.hidden.iter().map(|h| &h.name).collect::<Vec<_>>()),
            );
        }

        let mut m = Map::new();
        m.insert("input".into(), Json::Object(input));
        m.insert("input_order".into(), Json::Object(order));
        m.insert(
            "output".into(),
            json!(self
                .outputs
                .iter()
                .map(|o| &o.type_name)
                .collect::<Vec<_>>()),
        );
        m.insert(
            "output_is_list".into(),
            json!(self.outputs.iter().map(|o| o.is_list).collect::<Vec<_>>()),
        );
        m.insert(
            "output_name".into(),
            json!(self.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()),
        );
        m.insert("name".into(), json!(self.name));
        m.insert("display_name".into(), json!(self.display_name));
        m.insert("description".into(), json!(self.description));
        m.insert("python_module".into(), json!(self.python_module));
        m.insert("category".into(), json!(self.category));
        m.insert("output_node".into(), json!(self.output_node));
        if self.outputs.iter().any(|o| o.tooltip.is_some()) {
            m.insert(
                "output_tooltips".into(),
                json!(self.outputs.iter().map(|o| &o.tooltip).collect::<Vec<_>>()),
            );
        }
        if self.deprecated {
            m.insert("deprecated".into(), json!(true));
        }
        if self.experimental {
            m.insert("experimental".into(), json!(true));
        }
        Json::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksampler_like_schema_renders_as_comfyui() {
        let s = NodeSchema::new("KSampler")
            .category("sampling")
            .description("Denoises.")
            .required(InputSpec::socket("model", "MODEL"))
            .required(
                InputSpec::int("seed")
                    .default_int(0)
                    .min(0)
                    .max(u64::MAX)
                    .option("control_after_generate", true),
            )
            .required(
                InputSpec::float("cfg")
                    .default_value(8.0)
                    .min(0.0)
                    .max(100.0)
                    .step(0.1),
            )
            .required(InputSpec::combo("sampler_name", ["euler", "ddim"]))
            .output("LATENT");
        let text = serde_json::to_string(&s.to_object_info(&Dirs::default())).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"input":{"required":{"model":["MODEL"],"seed":["INT",{"default":0,"min":0,"max":18446744073709551615,"control_after_generate":true}],"#,
                r#""cfg":["FLOAT",{"default":8.0,"min":0.0,"max":100.0,"step":0.1}],"sampler_name":[["euler","ddim"],{}]}},"#,
                r#""input_order":{"required":["model","seed","cfg","sampler_name"]},"output":["LATENT"],"output_is_list":[false],"#,
                r#""output_name":["LATENT"],"name":"KSampler","display_name":"KSampler","description":"Denoises.","#,
                r#""python_module":"nodes","category":"sampling","output_node":false}"#
            )
        );
    }

    #[test]
    fn input_file_combo_lists_the_input_folder_at_render_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dirs = Dirs {
            input: dir.path().to_path_buf(),
            ..Dirs::default()
        };
        let s = NodeSchema::new("LoadImage")
            .required(InputSpec::input_file("image", ["PNG", "jpg"]).option("image_upload", true));
        assert_eq!(
            s.required[0].kind,
            InputType::InputFile(vec!["png".into(), "jpg".into()])
        );
        assert_eq!(s.required[0].kind.type_name(), "COMBO");
        assert_eq!(
            s.to_object_info(&dirs)["input"]["required"]["image"],
            json!([[], {"image_upload": true}])
        );
        std::fs::write(dir.path().join("cat.png"), b"x").expect("write");
        assert_eq!(
            s.to_object_info(&dirs)["input"]["required"]["image"],
            json!([["cat.png"], {"image_upload": true}])
        );
    }

    #[test]
    fn hidden_inputs_render_with_order() {
        let s = NodeSchema::new("SaveImage")
            .output_node()
            .required(InputSpec::socket("images", "IMAGE"))
            .hidden("prompt", "PROMPT")
            .hidden("extra_pnginfo", "EXTRA_PNGINFO");
        let j = s.to_object_info(&Dirs::default());
        assert_eq!(j["input"]["hidden"]["prompt"], "PROMPT");
        assert_eq!(
            j["input_order"]["hidden"],
            json!(["prompt", "extra_pnginfo"])
        );
        assert_eq!(j["output"], json!([]));
        assert_eq!(j["output_node"], true);
    }
}
