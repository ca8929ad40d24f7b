//! `omnigen nodes`: the node catalogue, as ComfyUI's `/object_info` JSON or a readable table.

use omnigen_engine::{Dirs, InputSpec, NodeSchema};

use crate::catalogue::{self, io_config};
use crate::cli::NodesArgs;
use crate::outcome::Failure;
use crate::terminal_text;

/// Prints the catalogue.
pub fn run(args: NodesArgs) -> Result<(), Failure> {
    let catalogue = catalogue::build(&args.catalogue, io_config(None)).map_err(Failure::Usage)?;
    let registry = &catalogue.registry;
    if args.json {
        let dirs = Dirs {
            input: args.input_dir.clone(),
            ..Dirs::default()
        };
        println!("{}", registry.object_info(&dirs));
        return Ok(());
    }
    let mut classes = registry.class_types();
    classes.sort();
    let width = classes.iter().map(String::len).max().unwrap_or(0);
    for class in classes {
        if let Some(node) = registry.get(&class) {
            // Plugin schemas supply these names: one escaped line per node type.
            println!("{}", terminal_text::field(&table_row(&node.schema, width)));
        }
    }
    Ok(())
}

/// `Name  (category)  inputs -> outputs`, e.g. `SaveImage  [image]  images: IMAGE, … -> (output node)`.
fn table_row(schema: &NodeSchema, width: usize) -> String {
    let describe = |input: &InputSpec, optional: bool| {
        let mark = if optional { "?" } else { "" };
        format!("{}{mark}: {}", input.name, input.kind.type_name())
    };
    let inputs: Vec<String> = schema
        .required
        .iter()
        .map(|i| describe(i, false))
        .chain(schema.optional.iter().map(|i| describe(i, true)))
        .collect();
    let outputs = if schema.outputs.is_empty() {
        String::new()
    } else {
        schema
            .outputs
            .iter()
            .map(|o| o.type_name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sink = if schema.output_node {
        " (output node)"
    } else {
        ""
    };
    format!(
        "{:width$}  [{}]  {} -> {}{sink}",
        schema.name,
        schema.category,
        inputs.join(", "),
        if outputs.is_empty() { "()" } else { &outputs },
    )
}
