//! Few-shot (in-context) prompts in the OmniGen paper's format:
//!
//! ```text
//! Input: <example instruction> <example input images> Output: <example output image>
//! …more examples…
//! Input: <query instruction with its images> Output:
//! ```
//!
//! Each `FewShotExample` node adds one example to a chain; `BuildPrompt` puts the chain in front of the
//! query. The example images are numbered first (`<|image_1|>`…), so the query's own placeholders are
//! shifted by the number of example images. Both templates are node inputs, so a user can change the
//! wording; the defaults are [`DEFAULT_EXAMPLE_TEMPLATE`] and [`DEFAULT_QUERY_TEMPLATE`].

use omnigen_model::processor::{image_tag, shift_placeholders};

/// The default layout of one example. `{instruction}` may be empty; `{inputs}` and `{output}` are required.
pub const DEFAULT_EXAMPLE_TEMPLATE: &str = "Input: {instruction} {inputs} Output: {output}";
/// The default layout of the query after the examples; `{query}` is required.
pub const DEFAULT_QUERY_TEMPLATE: &str = "Input: {query} Output:";

/// One example: input images, the output image, an optional instruction and its template.
#[derive(Debug, Clone)]
pub struct Example<I> {
    /// The example's input images (at least one).
    pub inputs: Vec<I>,
    /// The image the example's inputs should produce.
    pub output: I,
    /// Words to put in the example (may be empty).
    pub instruction: String,
    /// How this example is written out.
    pub template: String,
}

/// Examples in the order they appear in the prompt (the oldest link of the chain first), and the query
/// template of the newest one.
#[derive(Debug, Clone)]
pub struct ExampleChain<I> {
    /// The examples.
    pub examples: Vec<Example<I>>,
    /// How the query is written after the examples.
    pub query_template: String,
}

impl<I: Clone> ExampleChain<I> {
    /// A chain of one example, or `previous` extended by it.
    pub fn extend(
        previous: Option<&ExampleChain<I>>,
        example: Example<I>,
        query_template: String,
    ) -> Self {
        let mut examples = previous.map(|p| p.examples.clone()).unwrap_or_default();
        examples.push(example);
        ExampleChain {
            examples,
            query_template,
        }
    }

    /// Number of images the examples contribute.
    pub fn image_count(&self) -> usize {
        self.examples.iter().map(|e| e.inputs.len() + 1).sum()
    }
}

/// A template that lacks a field it must have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template '{template}' must contain {field}")]
pub struct TemplateError {
    /// The template.
    pub template: String,
    /// The missing field, e.g. `{output}`.
    pub field: &'static str,
}

/// Checks an example template (`{inputs}` and `{output}` present).
pub fn check_example_template(template: &str) -> Result<(), TemplateError> {
    for field in ["{inputs}", "{output}"] {
        if !template.contains(field) {
            return Err(TemplateError {
                template: template.into(),
                field,
            });
        }
    }
    Ok(())
}

/// Checks a query template (`{query}` present).
pub fn check_query_template(template: &str) -> Result<(), TemplateError> {
    if template.contains("{query}") {
        Ok(())
    } else {
        Err(TemplateError {
            template: template.into(),
            field: "{query}",
        })
    }
}

/// A prompt with examples folded in: the full instruction, all images in placeholder order, and where
/// the query's own images start in that list.
#[derive(Debug, Clone)]
pub struct Assembled<I> {
    /// The instruction with every example and the query.
    pub instruction: String,
    /// Example images first, then the query's.
    pub images: Vec<I>,
    /// Index in `images` of the query's first image.
    pub query_offset: usize,
}

/// Puts `chain`'s examples in front of the query (`instruction` with its `images`). Without a chain the
/// query is returned unchanged.
pub fn assemble<I: Clone>(
    chain: Option<&ExampleChain<I>>,
    instruction: &str,
    images: Vec<I>,
) -> Assembled<I> {
    let Some(chain) = chain else {
        return Assembled {
            instruction: instruction.to_string(),
            images,
            query_offset: 0,
        };
    };
    let mut all = Vec::with_capacity(chain.image_count() + images.len());
    let mut lines = Vec::with_capacity(chain.examples.len() + 1);
    for example in &chain.examples {
        let mut input_tags = Vec::with_capacity(example.inputs.len());
        for image in &example.inputs {
            all.push(image.clone());
            input_tags.push(image_tag(all.len()));
        }
        all.push(example.output.clone());
        let output_tag = image_tag(all.len());
        let line = example
            .template
            .replace("{instruction}", example.instruction.trim())
            .replace("{inputs}", &input_tags.join(" "))
            .replace("{output}", &output_tag);
        lines.push(tidy_spaces(&line));
    }
    let query_offset = all.len();
    let query = shift_placeholders(instruction.trim(), query_offset);
    lines.push(tidy_spaces(
        &chain.query_template.replace("{query}", &query),
    ));
    all.extend(images);
    Assembled {
        instruction: lines.join("\n"),
        images: all,
        query_offset,
    }
}

/// Removes the double spaces an empty field leaves behind, and the ends' spaces.
fn tidy_spaces(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for ch in line.trim().chars() {
        if ch == ' ' && out.ends_with(' ') {
            continue;
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(
        inputs: &[&'static str],
        output: &'static str,
        instruction: &str,
    ) -> Example<&'static str> {
        Example {
            inputs: inputs.to_vec(),
            output,
            instruction: instruction.into(),
            template: DEFAULT_EXAMPLE_TEMPLATE.into(),
        }
    }

    #[test]
    fn no_chain_leaves_the_query_alone() {
        let a = assemble::<&str>(None, "<img><|image_1|></img> x", vec!["q"]);
        assert_eq!(a.instruction, "<img><|image_1|></img> x");
        assert_eq!((a.images, a.query_offset), (vec!["q"], 0));
    }

    #[test]
    fn examples_come_first_and_the_query_is_renumbered() {
        let first = ExampleChain::extend(
            None,
            example(&["a"], "a_out", "Detect the edges."),
            DEFAULT_QUERY_TEMPLATE.into(),
        );
        let chain = ExampleChain::extend(
            Some(&first),
            example(&["b1", "b2"], "b_out", ""),
            DEFAULT_QUERY_TEMPLATE.into(),
        );
        assert_eq!(chain.image_count(), 5);
        let a = assemble(Some(&chain), "<img><|image_1|></img>", vec!["q"]);
        assert_eq!(
            a.instruction,
            "Input: Detect the edges. <img><|image_1|></img> Output: <img><|image_2|></img>\n\
             Input: <img><|image_3|></img> <img><|image_4|></img> Output: <img><|image_5|></img>\n\
             Input: <img><|image_6|></img> Output:"
        );
        assert_eq!(a.images, vec!["a", "a_out", "b1", "b2", "b_out", "q"]);
        assert_eq!(a.query_offset, 5);
    }

    #[test]
    fn custom_templates_are_used() {
        let ex = Example {
            template: "Example: {inputs} -> {output} ({instruction})".into(),
            ..example(&["a"], "b", "blur")
        };
        let chain = ExampleChain::extend(None, ex, "Now: {query} ->".into());
        let a = assemble(Some(&chain), "<img><|image_1|></img>", vec!["q"]);
        assert_eq!(
            a.instruction,
            "Example: <img><|image_1|></img> -> <img><|image_2|></img> (blur)\nNow: <img><|image_3|></img> ->"
        );
    }

    #[test]
    fn templates_missing_fields_are_refused() {
        assert!(check_example_template(DEFAULT_EXAMPLE_TEMPLATE).is_ok());
        assert_eq!(
            check_example_template("Input: {inputs}").unwrap_err().field,
            "{output}"
        );
        assert!(check_query_template(DEFAULT_QUERY_TEMPLATE).is_ok());
        assert_eq!(
            check_query_template("Input: Output:").unwrap_err().field,
            "{query}"
        );
    }
}
