//! `omnigen quantize IN OUT`: writes a pre-quantized copy of a model folder, which then loads in 8 or 4
//! bits without its full-precision weights ever being in memory (model/src/quant/prequantized.rs).

use omnigen_model::{quant, WeightFormat};

use crate::cli::QuantizeArgs;
use crate::outcome::Failure;

/// Writes the folder and prints what it holds.
pub fn run(args: QuantizeArgs) -> Result<(), Failure> {
    let format = WeightFormat::parse_quantized(&args.format).ok_or_else(|| {
        Failure::Usage(anyhow::anyhow!(
            "--format '{}' is not a quantized format; use {}",
            args.format,
            WeightFormat::QUANTIZED_NAMES.join(" or ")
        ))
    })?;
    let report = quant::write_prequantized(&args.input, &args.output, format).map_err(|e| {
        Failure::Usage(anyhow::anyhow!(
            "cannot quantize '{}': {e}",
            args.input.display()
        ))
    })?;
    println!("{}", args.output.display());
    eprintln!(
        "wrote a {format} model: {} decoder layers in {} ({:.1} MB), the other tensors in model.safetensors \
         ({:.1} MB); load it like any model folder",
        report.quantized_layers,
        quant::PREQUANTIZED_FILE,
        report.quantized_bytes as f64 / 1e6,
        report.other_bytes as f64 / 1e6
    );
    Ok(())
}
