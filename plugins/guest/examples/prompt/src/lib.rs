//! Example plugin `prompt`: fills a text template, e.g. to build OmniGen's
//! "<img><|image_1|></img>" prompts from parts.

use omnigen_plugin_sdk::prelude::*;

/// Replaces `{a}`, `{b}`, `{c}` and `{image_1}` … `{image_3}` in a template.
pub struct Template;

/// Expands the template; `{{` and `}}` stand for literal braces.
fn expand(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, NodeError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(NodeError::InvalidParams(
                "template: unmatched `}` (write `}}`)".into(),
            ));
        }
        let end = tail
            .find('}')
            .ok_or_else(|| NodeError::InvalidParams("template: unclosed `{`".into()))?;
        let key = &tail[1..end];
        let value = lookup(key).ok_or_else(|| {
            NodeError::InvalidParams(format!(
                "template: unknown placeholder `{{{key}}}` (use a, b, c, image_1..image_3)"
            ))
        })?;
        out.push_str(&value);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Node for Template {
    const ID: &'static str = "template";
    fn spec() -> NodeSpec {
        NodeSpec::new("Prompt template")
            .description(
                "Fills {a}, {b}, {c} from the text inputs and {image_1}..{image_3} with OmniGen's \
                 image placeholders (<img><|image_1|></img>).",
            )
            .category("text")
            .input(Port::text("a").optional())
            .input(Port::text("b").optional())
            .input(Port::text("c").optional())
            .output(Port::text("text"))
            .string_param(
                "template",
                "Following the edge map of {image_1}, generate {a}",
                true,
            )
    }
    fn run(_ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let a = inputs.take_text_opt("a")?;
        let b = inputs.take_text_opt("b")?;
        let c = inputs.take_text_opt("c")?;
        let text = expand(params.str("template")?, |key| match key {
            "a" => Some(a.clone().unwrap_or_default()),
            "b" => Some(b.clone().unwrap_or_default()),
            "c" => Some(c.clone().unwrap_or_default()),
            "image_1" | "image_2" | "image_3" => Some(format!("<img><|{key}|></img>")),
            _ => None,
        })?;
        Ok(Outputs::new().text("text", text))
    }
}

omnigen_plugin_sdk::plugin!(name: "prompt", version: "0.1.0", nodes: [Template]);
