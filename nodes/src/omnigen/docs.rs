//! The node reference (`docs/nodes.md`), generated from the registered schemas so it cannot drift from
//! the code. `cargo test -p omnigen-nodes docs_are_current` checks it; run it with `OMNIGEN_UPDATE_DOCS=1`
//! to rewrite the file after changing a node.

use omnigen_engine::{InputSpec, InputType, NodeSchema, Registry};

use super::few_shot::{DEFAULT_EXAMPLE_TEMPLATE, DEFAULT_QUERY_TEMPLATE};

const INTRO: &str = "# Node reference\n\n\
Generated from the node catalogue (`cargo test -p omnigen-nodes docs_are_current` with `OMNIGEN_UPDATE_DOCS=1`); do \
not edit by hand. Class names, input names and defaults are the interface saved graphs depend on: they only \
change with a note in the changelog.\n\n\
Inputs marked *optional* may be left out of a graph. A socket type in CAPITALS (`LATENT`, `OMNIGEN` …) must be \
linked to another node's output; the others are widgets whose value is written in the graph.\n";

const CHECKS: &str = "\n## When inputs are checked\n\n\
The OmniGen rules belong to the model crate (`omnigen-model`); each node reads its inputs once into the model's \
types, with the same code before the run (`omnigen validate`, and every run's validation) and when it runs, and \
reports the model's error against the input to fix (`input 'width': width 1000 must be a multiple of 16 between 16 \
and 3072`):\n\n\
- ranges written in the table above (e.g. `steps` 1…1000) are checked by the engine before anything else;\n\
- `OmniGenSample`: `width`/`height` must be multiples of 16 (not checked with `use_input_image_size_as_output`), \
`kv_cache` one of its modes; a `noise` of the wrong shape and `use_input_image_size_as_output` without a picture \
are reported at run time, when the linked values are known;\n\
- `BuildPrompt`: every `<|image_N|>` needs a LATENT linked to `image_N`, every linked `image_N` must be referred to, \
and the numbers run from 1 without gaps (checked before the run for a constant instruction);\n\
- `LoadOmniGen`: `dtype`/`device` names, the LoRA folder and a local model folder's files (all missing files are \
named, official or diffusers layout); a Hugging Face repo that is not cached fails before the run when \
`HF_HUB_OFFLINE` is set.\n\n\
A value that comes through a link is checked when the node runs, by the same code.\n";

/// The whole reference page for the nodes in `registry`.
pub fn nodes_markdown(registry: &Registry) -> String {
    let mut out = String::from(INTRO);
    out.push_str("\n| class_type | inputs (defaults) | outputs |\n|---|---|---|\n");
    let schemas: Vec<_> = registry
        .class_types()
        .into_iter()
        .filter_map(|c| registry.get(&c))
        .map(|r| r.schema)
        .collect();
    let mut ordered: Vec<&NodeSchema> = schemas.iter().map(|s| s.as_ref()).collect();
    ordered.sort_by(|a, b| (&a.category, &a.name).cmp(&(&b.category, &b.name)));
    for schema in &ordered {
        out.push_str(&table_row(schema));
    }
    out.push_str("\n## Descriptions\n");
    for schema in &ordered {
        out.push_str(&format!(
            "\n### {}\n\n{}\n",
            schema.name,
            one_line(&schema.description)
        ));
        let tips: Vec<String> = schema
            .required
            .iter()
            .chain(&schema.optional)
            .filter_map(|i| {
                i.options
                    .tooltip
                    .as_ref()
                    .map(|t| format!("- `{}`: {}", i.name, one_line(t)))
            })
            .collect();
        if !tips.is_empty() {
            out.push('\n');
            out.push_str(&tips.join("\n"));
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n## Few-shot prompt format\n\n\
         `FewShotExample` nodes form a chain (oldest first); `BuildPrompt` writes each example with its `template` \
         (default `{DEFAULT_EXAMPLE_TEMPLATE}`), one per line, then the query with the newest example's \
         `query_template` (default `{DEFAULT_QUERY_TEMPLATE}`). Example pictures are numbered first, so the \
         query's own `<|image_N|>` placeholders are shifted by the number of example pictures. With one example \
         (one input) and a query picture, the instruction the model sees is:\n\n\
         ```text\n\
         Input: Detect the edges of the picture. <img><|image_1|></img> Output: <img><|image_2|></img>\n\
         Input: <img><|image_3|></img> Output:\n\
         ```\n\n\
         `use_input_image_size_as_output` takes the size of the query's first picture, not the first example's.\n"
    ));
    out.push_str(CHECKS);
    out
}

fn table_row(schema: &NodeSchema) -> String {
    let inputs: Vec<String> = schema
        .required
        .iter()
        .map(|i| describe_input(i, false))
        .chain(schema.optional.iter().map(|i| describe_input(i, true)))
        .collect();
    let mut outputs: Vec<String> = schema
        .outputs
        .iter()
        .map(|o| {
            if o.name == o.type_name {
                format!("`{}`", o.type_name)
            } else {
                format!("`{}` {}", o.type_name, o.name)
            }
        })
        .collect();
    if schema.output_node {
        outputs.push("(output node)".into());
    }
    format!(
        "| `{}` | {} | {} |\n",
        schema.name,
        if inputs.is_empty() {
            "—".into()
        } else {
            inputs.join("<br>")
        },
        if outputs.is_empty() {
            "—".into()
        } else {
            outputs.join(", ")
        }
    )
}

fn describe_input(input: &InputSpec, optional: bool) -> String {
    let o = &input.options;
    let kind = match &input.kind {
        InputType::Combo(options) => options.join("/"),
        InputType::InputFile(extensions) => format!("file of input/ ({})", extensions.join("/")),
        other => other.type_name().to_string(),
    };
    let mut extras = Vec::new();
    if let Some(d) = &o.default {
        let shown = match d {
            serde_json::Value::String(s) if s.len() > 40 => {
                format!("\"{}…\"", s.chars().take(37).collect::<String>())
            }
            serde_json::Value::String(s) => format!("\"{s}\""),
            other => other.to_string(),
        };
        extras.push(format!("default {}", shown.replace('|', "\\|")));
    }
    match (o.min, o.max) {
        (Some(min), Some(max)) => extras.push(format!("{}…{}", min.to_json(), max.to_json())),
        (Some(min), None) => extras.push(format!("≥ {}", min.to_json())),
        (None, Some(max)) => extras.push(format!("≤ {}", max.to_json())),
        (None, None) => {}
    }
    if o.multiline {
        extras.push("multiline".into());
    }
    if optional {
        extras.push("*optional*".into());
    }
    let extras = if extras.is_empty() {
        String::new()
    } else {
        format!(" ({})", extras.join(", "))
    };
    format!("`{}` {}{}", input.name, kind, extras)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/nodes.md` matches the catalogue (rewrite with `OMNIGEN_UPDATE_DOCS=1`).
    #[test]
    fn docs_are_current() {
        let registry = Registry::new();
        crate::register_builtin(&registry);
        let text = nodes_markdown(&registry);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/nodes.md");
        if std::env::var_os("OMNIGEN_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &text).expect("write docs/nodes.md");
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "docs/nodes.md is out of date: run `OMNIGEN_UPDATE_DOCS=1 cargo test -p omnigen-nodes docs_are_current`"
        );
    }

    #[test]
    fn every_omnigen_node_is_in_the_table() {
        let registry = Registry::new();
        super::super::register(&registry, false);
        let text = nodes_markdown(&registry);
        for class in [
            "LoadOmniGen",
            "EncodeVAE",
            "BuildPrompt",
            "FewShotExample",
            "OmniGenSample",
            "DecodeVAE",
            "LoadLatent",
            "SaveLatent",
        ] {
            assert!(text.contains(&format!("| `{class}` |")), "{class} missing");
        }
        assert!(text.contains("`steps` INT (default 50, 1…1000)"), "{text}");
        assert!(
            text.contains("`kv_cache` reference/exact/off (default \"reference\")"),
            "{text}"
        );
    }
}
