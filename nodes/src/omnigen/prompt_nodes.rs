//! `BuildPrompt` (instruction + condition latents + guidance settings) and `FewShotExample`.

use std::sync::Arc;

use omnigen_engine::{
    BoxFuture, CheckContext, InputSpec, Inputs, NodeContext, NodeError, NodeOutput, NodeSchema,
    NodeType, Value,
};
use omnigen_model::Latent;

use super::few_shot::{
    self, Example, ExampleChain, DEFAULT_EXAMPLE_TEMPLATE, DEFAULT_QUERY_TEMPLATE,
};
use super::placeholders::{self, MAX_IMAGES};
use super::values::{
    ExampleValue, LatentValue, PromptValue, LATENT, OMNIGEN_EXAMPLE, OMNIGEN_PROMPT,
};
use super::CATEGORY;

/// The reference pipeline's negative prompt (`OmniGenProcessor.__call__`'s default).
pub const DEFAULT_NEGATIVE_PROMPT: &str = "low quality, jpeg artifacts, ugly, duplicate, morbid, mutilated, extra fingers, \
mutated hands, poorly drawn hands, poorly drawn face, mutation, deformed, blurry, dehydrated, bad anatomy, bad proportions, \
extra limbs, cloned face, disfigured, gross proportions, malformed limbs, missing arms, missing legs, extra arms, extra legs, \
fused fingers, too many fingers.";

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
        // A linked instruction is only known at run time (and checked there); a constant one is checked
        // against the connected image_N sockets before anything runs.
        if let Some(text) = inputs.opt_str("instruction")? {
            let connected: Vec<usize> = (1..=MAX_IMAGES)
                .filter(|&n| ctx.is_linked(&image_input_name(n)))
                .collect();
            placeholders::check_against_connected(text, &connected)
                .map_err(|e| NodeError::input("instruction", e))?;
        }
        Ok(())
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let instruction = inputs.get_str("instruction")?;
            let mut connected = Vec::new();
            let mut slots = Vec::new();
            for n in 1..=MAX_IMAGES {
                if let Some(latent) = single_latent(&inputs, &image_input_name(n))? {
                    connected.push(n);
                    slots.push((n, latent));
                }
            }
            placeholders::check_against_connected(instruction, &connected)
                .map_err(|e| NodeError::input("instruction", e).with_kind("PromptError"))?;
            // Connected slots are exactly 1..=K now, so their order is the placeholder order.
            let images: Vec<Latent> = slots.into_iter().map(|(_, l)| l).collect();
            let chain = inputs.opt_opaque::<ExampleValue>("examples")?;
            let assembled =
                few_shot::assemble(chain.as_ref().map(|c| c.0.as_ref()), instruction, images);
            let prompt = PromptValue {
                instruction: assembled.instruction,
                images: assembled.images,
                query_offset: assembled.query_offset,
                negative_prompt: inputs.get_str("negative_prompt")?.to_string(),
                use_img_guidance: inputs.get_bool("use_img_guidance")?,
            };
            Ok(NodeOutput::new(vec![Value::Opaque(Arc::new(prompt))]))
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
        if let Some(t) = inputs.opt_str("template")? {
            few_shot::check_example_template(t).map_err(|e| NodeError::input("template", e))?;
        }
        if let Some(t) = inputs.opt_str("query_template")? {
            few_shot::check_query_template(t).map_err(|e| NodeError::input("query_template", e))?;
        }
        Ok(())
    }

    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
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
            let template = inputs
                .opt_str("template")?
                .unwrap_or(DEFAULT_EXAMPLE_TEMPLATE)
                .to_string();
            let query_template = inputs
                .opt_str("query_template")?
                .unwrap_or(DEFAULT_QUERY_TEMPLATE)
                .to_string();
            few_shot::check_example_template(&template)
                .map_err(|e| NodeError::input("template", e))?;
            few_shot::check_query_template(&query_template)
                .map_err(|e| NodeError::input("query_template", e))?;
            let example = Example {
                inputs: example_inputs,
                output,
                instruction: inputs.opt_str("instruction")?.unwrap_or("").to_string(),
                template,
            };
            let previous = inputs.opt_opaque::<ExampleValue>("previous")?;
            let chain = ExampleChain::extend(
                previous.as_ref().map(|p| p.0.as_ref()),
                example,
                query_template,
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
}
