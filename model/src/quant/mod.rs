//! Quantized transformer weights: the decoder's four linear layers per block (`qkv_proj`, `o_proj`,
//! `gate_up_proj`, `down_proj`, 97 % of the real model's parameters) stored in ggml block formats and
//! multiplied with candle's quantized matmul kernels (CPU, CUDA, Metal). Embeddings, norms, the timestep
//! and patch embedders, adaLN and the final layer stay in the compute dtype.

mod prequantized;

use candle_core::quantized::GgmlDType;

pub(crate) use prequantized::StoredLinears;
pub use prequantized::{write_prequantized, PrequantizedReport, PREQUANTIZED_FILE};

/// The decoder block's quantizable linear layers, by their names inside `llm.layers.N.`.
pub(crate) const DECODER_LINEARS: [&str; 4] = [
    "self_attn.qkv_proj",
    "self_attn.o_proj",
    "mlp.gate_up_proj",
    "mlp.down_proj",
];

/// The token embedding's official name: stored quantized (q8_0) with any quantized format.
pub(crate) const TOKEN_EMBEDDING: &str = "llm.embed_tokens.weight";

/// True for a tensor a quantized format stores quantized: the decoder linears and the token embedding.
pub(crate) fn is_quantized_weight(name: &str) -> bool {
    name == TOKEN_EMBEDDING || is_decoder_linear_weight(name)
}

/// True for the official name of a decoder linear's weight (`llm.layers.N.mlp.down_proj.weight`).
pub(crate) fn is_decoder_linear_weight(name: &str) -> bool {
    name.strip_prefix("llm.layers.")
        .and_then(|rest| rest.split_once('.'))
        .and_then(|(layer, rest)| layer.parse::<usize>().ok().map(|_| rest))
        .and_then(|rest| rest.strip_suffix(".weight"))
        .is_some_and(|linear| DECODER_LINEARS.contains(&linear))
}

/// Where the decoder's linear weights come from while a transformer loads.
#[derive(Clone, Copy)]
pub(crate) enum LinearSource<'a> {
    /// From the checkpoint, stored in this format (quantized one layer at a time).
    Quantize(WeightFormat),
    /// Already quantized, from a pre-quantized model's `quantized.gguf`.
    Stored(&'a StoredLinears),
}

/// How the decoder's linear weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightFormat {
    /// The compute dtype (f32 or bf16): no quantization.
    #[default]
    Full,
    /// 8 bits: ggml `q8_0` (blocks of 32 weights with one f16 scale, 8.5 bits a weight).
    Q8,
    /// 4 bits: ggml `q4k` (super-blocks of 256, 4.5 bits a weight), or `q4_0` (blocks of 32, 4.5 bits)
    /// for a layer whose input width is not a multiple of 256.
    Q4,
}

impl WeightFormat {
    /// The names [`WeightFormat::parse`] accepts for the quantized formats.
    pub const QUANTIZED_NAMES: [&'static str; 2] = ["q8", "q4"];

    /// `q8` or `q4` (`None` for any other text: the caller decides whether it is a dtype).
    pub fn parse_quantized(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "q8" | "q8_0" | "int8" => Some(Self::Q8),
            "q4" | "q4k" | "q4_k" | "int4" => Some(Self::Q4),
            _ => None,
        }
    }

    /// The ggml block type of the token embedding table with rows of `hidden` values: `q8_0` for every
    /// quantized format (a lookup dequantizes a few hundred rows, and 4 bits would cost quality for 50 MB).
    pub fn embedding_block_type(self, hidden: usize) -> Option<GgmlDType> {
        match self {
            Self::Full => None,
            Self::Q8 | Self::Q4 => {
                Some(GgmlDType::Q8_0).filter(|t| hidden.is_multiple_of(t.block_size()))
            }
        }
    }

    /// The ggml block type for a weight whose rows hold `in_features` values, or `None` to keep the
    /// layer in full precision (format `Full`, or a width no block size divides).
    pub fn block_type(self, in_features: usize) -> Option<GgmlDType> {
        let candidates: &[GgmlDType] = match self {
            Self::Full => &[],
            Self::Q8 => &[GgmlDType::Q8_0],
            Self::Q4 => &[GgmlDType::Q4K, GgmlDType::Q4_0],
        };
        candidates
            .iter()
            .copied()
            .find(|t| in_features.is_multiple_of(t.block_size()))
    }
}

/// Bytes an `[out, in]` decoder weight takes in `format`; `dense_bytes` per value when it is not quantized
/// (the compute dtype's size). What [`crate::Transformer::decoder_linear_bytes`] measures, as arithmetic.
pub fn linear_weight_bytes(
    out: usize,
    inp: usize,
    format: WeightFormat,
    dense_bytes: usize,
) -> usize {
    match format.block_type(inp) {
        Some(block) => out * inp / block.block_size() * block.type_size(),
        None => out * inp * dense_bytes,
    }
}

/// The `[out, in]` shapes of one decoder block's four linears (qkv, o, gate_up, down).
pub fn decoder_linear_shapes(hidden: usize, intermediate: usize) -> [(usize, usize); 4] {
    [
        (3 * hidden, hidden),
        (hidden, hidden),
        (2 * intermediate, hidden),
        (hidden, intermediate),
    ]
}

impl std::fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Full => "full precision",
            Self::Q8 => "q8",
            Self::Q4 => "q4",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_types_follow_the_layer_width() {
        assert_eq!(WeightFormat::Q4.block_type(3072), Some(GgmlDType::Q4K));
        assert_eq!(WeightFormat::Q4.block_type(32), Some(GgmlDType::Q4_0));
        assert_eq!(WeightFormat::Q8.block_type(8192), Some(GgmlDType::Q8_0));
        assert_eq!(WeightFormat::Q8.block_type(48), None);
        assert_eq!(WeightFormat::Full.block_type(3072), None);
    }

    #[test]
    fn real_model_weight_bytes() {
        // 32 blocks of the real config: 3.62 G weights; q8_0 34 bytes per 32, q4k 144 per 256.
        let total = |format, dense| -> usize {
            32 * decoder_linear_shapes(3072, 8192)
                .iter()
                .map(|&(o, i)| linear_weight_bytes(o, i, format, dense))
                .sum::<usize>()
        };
        assert_eq!(total(WeightFormat::Full, 2), 7_247_757_312);
        assert_eq!(total(WeightFormat::Q8, 2), 3_850_371_072);
        assert_eq!(total(WeightFormat::Q4, 2), 2_038_431_744);
    }

    #[test]
    fn decoder_linear_names() {
        assert!(is_decoder_linear_weight(
            "llm.layers.31.mlp.down_proj.weight"
        ));
        assert!(is_decoder_linear_weight(
            "llm.layers.0.self_attn.qkv_proj.weight"
        ));
        assert!(!is_decoder_linear_weight(
            "llm.layers.0.input_layernorm.weight"
        ));
        assert!(!is_decoder_linear_weight(
            "llm.layers.x.mlp.down_proj.weight"
        ));
        assert!(!is_decoder_linear_weight("final_layer.linear.weight"));
    }

    #[test]
    fn names_parse() {
        assert_eq!(WeightFormat::parse_quantized("Q8"), Some(WeightFormat::Q8));
        assert_eq!(WeightFormat::parse_quantized("q4k"), Some(WeightFormat::Q4));
        assert_eq!(WeightFormat::parse_quantized("bf16"), None);
    }
}
