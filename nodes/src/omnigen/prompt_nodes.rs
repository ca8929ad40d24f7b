//! `BuildPrompt` (instruction + condition latents + guidance settings) and `FewShotExample`.

use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema,
    NodeType, Value,
};
use omnigen_model::processor::{check_placeholders, PlaceholderError, DEFAULT_NEGATIVE_PROMPT};
use omnigen_model::{Instruction, Latent};

use super::few_shot::{
    self, Example, ExampleChain, DEFAULT_EXAMPLE_TEMPLATE, DEFAULT_QUERY_TEMPLATE,
};
use super::values::{
    ExampleValue, InstructionValue, LatentValue, LATENT, OMNIGEN_EXAMPLE, OMNIGEN_PROMPT,
};
use super::CATEGORY;

/// How many image inputs `BuildPrompt` offers (`image_1` … `image_8`).
pub const MAX_IMAGES: usize = 8;

/// The `BuildPrompt` node.
#[derive(Debug, Clone, Default)]
pub struct BuildPrompt;

/// The `FewShotExample` node.
#[derive(Debug, Clone, Default)]
pub struct FewShotExample;

/// One latent from an optional LATENT input; OmniGen takes exactly one picture per placeholder.
fn single_latent(inputs: &Inputs, name: &str) -> Result<Option<Latent>, NodeError> {
    let Some(value) = inputs.opt_opaque::<LatentValue>(name)? else {
        return Ok(None);
    };
    let batch = value.0.tensor().dims().first().copied().unwrap_or(0);
    if batch != 1 {
        return Err(NodeError::input(
            name,
            format!("holds a batch of {batch} latents; connect a single picture (OmniGen takes one image per placeholder)"),
        ));
    }
    Ok(Some(value.0.clone()))
}

fn image_input_name(n: usize) -> String {
    format!("image_{n}")
}

/// The model's placeholder rule broken, said in terms of this node's `image_N` sockets.
fn placeholder_error(err: &PlaceholderError) -> NodeError {
    let message = match err {
        PlaceholderError::MissingImage(n) => format!(
            "the instruction refers to <|image_{n}|> but nothing is connected to image_{n}; connect an image \
             (a LATENT from EncodeVAE) to image_{n} or remove the placeholder"
        ),
        PlaceholderError::Unreferenced(n) => format!(
            "image_{n} is connected but the instruction never refers to it; add <img><|image_{n}|></img> where \
             the picture belongs, or disconnect image_{n}"
        ),
        PlaceholderError::Gap { missing, used } => format!(
            "images must be numbered from 1 without gaps: image_{missing} is not used but image_{used} is; \
             renumber the placeholders and inputs"
        ),
        PlaceholderError::OutOfRange { .. } => err.to_string(),
    };
    NodeError::input("instruction", message).with_kind("PromptError")
}

/// `BuildPrompt`'s settings, parsed and checked once by the same code for `validate` (the constants; the
/// connected image slots come from the links) and `run` (everything). A linked instruction is `None` at
/// validation and checked at run time.
#[derive(Debug)]
struct PromptArgs<'a> {
    instruction: Option<&'a str>,
    negative_prompt: Option<&'a str>,
    use_img_guidance: Option<bool>,
}

impl<'a> PromptArgs<'a> {
    /// Reads the settings and checks the instruction's placeholders against the `connected` slots.
    fn parse(inputs: &'a Inputs, connected: &[usize]) -> Result<Self, NodeError> {
        let instruction = inputs.opt_str("instruction")?;
        if let Some(text) = instruction {
            check_placeholders(text, connected, MAX_IMAGES).map_err(|e| placeholder_error(&e))?;
        }
        Ok(Self {
            instruction,
            negative_prompt: inputs.opt_str("negative_prompt")?,
            use_img_guidance: inputs.opt_bool("use_img_guidance")?,
        })
    }
}

fn required<T>(value: Option<T>, name: &str) -> Result<T, NodeError> {
    value.ok_or_else(|| NodeError::input(name, "missing"))
}

impl NodeType for BuildPrompt {
    fn schema(&self) -> NodeSchema {
        let mut schema = NodeSchema::new("BuildPrompt")
            .display_name("OmniGen Prompt")
            .category(CATEGORY)
            .description(
                "An OmniGen instruction. Place condition pictures with <img><|image_1|></img> … <img><|image_8|></img> \
                 and connect a LATENT to each image_N used. Optional few-shot examples go in front of the instruction.",
            )
            .required(
                InputSpec::string("instruction")
                    .multiline()
                    .default_value("")
                    .tooltip("What to generate; refer to connected pictures as <img><|image_N|></img>."),
            )
            .required(
                InputSpec::string("negative_prompt")
                    .multiline()
                    .default_value(DEFAULT_NEGATIVE_PROMPT)
                    .tooltip("Text for the unconditional guidance branch (the reference default)."),
            )
            .required(
                InputSpec::boolean("use_img_guidance")
                    .default_value(true)
                    .tooltip("Use the image-only guidance branch (img_guidance_scale) when pictures are connected."),
            );
        for n in 1..=MAX_IMAGES {
            schema = schema.optional(InputSpec::socket(image_input_name(n), LATENT));
        }
        schema
            .optional(InputSpec::socket("examples", OMNIGEN_EXAMPLE))
            .named_output(OMNIGEN_PROMPT, "prompt")
    }

    fn validate(&self, inputs: &Inputs, ctx: &CheckContext) -> Result<(), NodeError> {
        let connected: Vec<usize> = (1..=MAX_IMAGES)
            .filter(|&n| ctx.is_linked(&image_input_name(n)))
            .collect();
        PromptArgs::parse(inputs, &connected).map(drop)
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let mut connected = Vec::new();
            let mut images = Vec::new();
            for n in 1..=MAX_IMAGES {
                if let Some(latent) = single_latent(&inputs, &image_input_name(n))? {
                    connected.push(n);
                    images.push(latent);
                }
            }
            let args = PromptArgs::parse(&inputs, &connected)?;
            // Connected slots are exactly 1..=K now, so their order is the placeholder order.
            let chain = inputs.opt_opaque::<ExampleValue>("examples")?;
            let assembled = few_shot::assemble(
                chain.as_ref().map(|c| c.0.as_ref()),
                required(args.instruction, "instruction")?,
                images,
            );
            let instruction = Instruction::new(assembled.instruction)
                .with_images(assembled.images)
                .with_negative_prompt(required(args.negative_prompt, "negative_prompt")?)
                .with_img_guidance(required(args.use_img_guidance, "use_img_guidance")?)
                // use_input_image_size_as_output takes the query's first picture, not an example's.
                .with_size_image(assembled.query_offset);
            Ok(NodeOutput::new(vec![Value::Opaque(Arc::new(
                InstructionValue(instruction),
            ))]))
        })
    }
}

/// `FewShotExample`'s templates and words, parsed and checked once for `validate` and `run`.
#[derive(Debug)]
struct ExampleArgs {
    instruction: String,
    template: String,
    query_template: String,
}

impl ExampleArgs {
    fn parse(inputs: &Inputs) -> Result<Self, NodeError> {
        let template = inputs
            .opt_str("template")?
            .unwrap_or(DEFAULT_EXAMPLE_TEMPLATE)
            .to_string();
        let query_template = inputs
            .opt_str("query_template")?
            .unwrap_or(DEFAULT_QUERY_TEMPLATE)
            .to_string();
        few_shot::check_example_template(&template).map_err(|e| NodeError::input("template", e))?;
        few_shot::check_query_template(&query_template)
            .map_err(|e| NodeError::input("query_template", e))?;
        Ok(Self {
            instruction: inputs.opt_str("instruction")?.unwrap_or("").to_string(),
            template,
            query_template,
        })
    }
}

impl NodeType for FewShotExample {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("FewShotExample")
            .display_name("OmniGen Few-Shot Example")
            .category(CATEGORY)
            .description(
                "One in-context example (input pictures → output picture) put in front of BuildPrompt's instruction, \
                 in the paper's format \"Input: … Output: …\". Chain several with previous.",
            )
            .required(InputSpec::socket("input_image", LATENT))
            .required(InputSpec::socket("output_image", LATENT))
            .optional(InputSpec::socket("input_image_2", LATENT))
            .optional(InputSpec::socket("input_image_3", LATENT))
            .optional(
                InputSpec::string("instruction")
                    .multiline()
                    .default_value("")
                    .tooltip("Words for this example, e.g. the task (\"Detect the edges.\")."),
            )
            .optional(InputSpec::socket("previous", OMNIGEN_EXAMPLE).tooltip("Earlier examples; this one follows them."))
            .optional(
                InputSpec::string("template")
                    .default_value(DEFAULT_EXAMPLE_TEMPLATE)
                    .tooltip("How this example is written: {instruction}, {inputs} and {output} are filled in."),
            )
            .optional(
                InputSpec::string("query_template")
                    .default_value(DEFAULT_QUERY_TEMPLATE)
                    .tooltip("How the query follows the examples: {query} is BuildPrompt's instruction."),
            )
            .named_output(OMNIGEN_EXAMPLE, "examples")
    }

    fn validate(&self, inputs: &Inputs, _ctx: &CheckContext) -> Result<(), NodeError> {
        ExampleArgs::parse(inputs).map(drop)
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let args = ExampleArgs::parse(&inputs)?;
            let mut example_inputs = Vec::new();
            for name in ["input_image", "input_image_2", "input_image_3"] {
                if let Some(latent) = single_latent(&inputs, name)? {
                    example_inputs.push(latent);
                }
            }
            if example_inputs.is_empty() {
                return Err(NodeError::input("input_image", "missing"));
            }
            let output = single_latent(&inputs, "output_image")?
                .ok_or_else(|| NodeError::input("output_image", "missing"))?;
            let example = Example {
                inputs: example_inputs,
                output,
                instruction: args.instruction,
                template: args.template,
            };
            let previous = inputs.opt_opaque::<ExampleValue>("previous")?;
            let chain = ExampleChain::extend(
                previous.as_ref().map(|p| p.0.as_ref()),
                example,
                args.query_template,
            );
            Ok(NodeOutput::new(vec![Value::opaque(ExampleValue(
                Arc::new(chain),
            ))]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default negative prompt is the reference's, as recorded with the parity fixtures.
    #[test]
    fn default_negative_prompt_is_the_reference_one() {
        let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../model/tests/fixtures/cases.json");
        let cases: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(cases).expect("cases.json"))
                .expect("JSON");
        assert_eq!(
            cases["negative_prompt"].as_str(),
            Some(DEFAULT_NEGATIVE_PROMPT)
        );
    }

    #[test]
    fn schema_offers_eight_image_slots_and_examples() {
        let schema = BuildPrompt.schema();
        let optional: Vec<&str> = schema.optional.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(optional.len(), MAX_IMAGES + 1);
        assert_eq!(optional[0], "image_1");
        assert_eq!(optional[7], "image_8");
        assert_eq!(optional[8], "examples");
        assert_eq!(schema.outputs[0].type_name, OMNIGEN_PROMPT);
    }

    /// `BuildPrompt.validate` with a constant instruction and the given `image_N` slots linked.
    fn check(instruction: &str, linked: &[usize]) -> Result<(), NodeError> {
        let mut ctx = CheckContext::new("2", Default::default());
        ctx.linked = linked.iter().map(|&n| image_input_name(n)).collect();
        let inputs = Inputs::new().with("instruction", Value::String(instruction.into()));
        BuildPrompt.validate(&inputs, &ctx)
    }

    #[test]
    fn placeholders_are_checked_against_the_linked_image_slots() {
        let message = |instruction: &str, linked: &[usize]| {
            check(instruction, linked).expect_err(instruction).message
        };
        let err = message("<img><|image_1|></img> <img><|image_2|></img>", &[1]);
        assert!(err.starts_with("input 'instruction'"), "{err}");
        assert!(err.contains("nothing is connected to image_2"), "{err}");
        let err = message("<img><|image_1|></img> make it blue", &[1, 2]);
        assert!(
            err.contains("image_2 is connected but the instruction never refers to it"),
            "{err}"
        );
        let err = message("<|image_1|> <|image_3|>", &[1, 3]);
        assert!(
            err.contains("image_2 is not used but image_3 is; renumber"),
            "{err}"
        );
        let err = message("<|image_9|>", &[]);
        assert!(err.contains("<|image_9|> is out of range"), "{err}");
        assert_eq!(check("<|image_2|> then <|image_1|>", &[1, 2]), Ok(()));
        assert_eq!(check("a cat", &[]), Ok(()));
    }
}
