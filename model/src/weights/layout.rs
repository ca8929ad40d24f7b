//! How the official tensor names map onto the names stored in a checkpoint.

use super::checkpoint::RowFusion;

/// The naming scheme of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Names as in the official `model.safetensors` (`llm.layers.N...`, `x_embedder.proj...`).
    Official,
    /// Names of diffusers' `OmniGenTransformer2DModel` (spec §3.4); q/k/v are stored split.
    Diffusers,
}

/// Diffusers stores each layer's fused `qkv_proj` as three row blocks.
const DIFFUSERS_FUSIONS: &[RowFusion] = &[RowFusion {
    fused: ".self_attn.qkv_proj.weight",
    parts: &[
        ".self_attn.to_q.weight",
        ".self_attn.to_k.weight",
        ".self_attn.to_v.weight",
    ],
}];

/// Official prefix -> diffusers prefix, outside the decoder (`llm.`).
const DIFFUSERS_PREFIXES: &[(&str, &str)] = &[
    ("pos_embed", "patch_embedding.pos_embed"),
    ("x_embedder.proj.", "patch_embedding.output_image_proj."),
    (
        "input_x_embedder.proj.",
        "patch_embedding.input_image_proj.",
    ),
    ("time_token.mlp.0.", "time_token.linear_1."),
    ("time_token.mlp.2.", "time_token.linear_2."),
    ("t_embedder.mlp.0.", "t_embedder.linear_1."),
    ("t_embedder.mlp.2.", "t_embedder.linear_2."),
    ("final_layer.adaLN_modulation.1.", "norm_out.linear."),
    ("final_layer.linear.", "proj_out."),
];

impl Layout {
    /// The name under which the tensor with official name `official` is stored (for a fused tensor, the
    /// name that [`Layout::fusions`] resolves).
    pub fn stored_name(self, official: &str) -> String {
        if self == Layout::Official {
            return official.to_string();
        }
        for (from, to) in DIFFUSERS_PREFIXES {
            if let Some(rest) = official.strip_prefix(from) {
                return format!("{to}{rest}");
            }
        }
        let Some(rest) = official.strip_prefix("llm.") else {
            return official.to_string();
        };
        match rest.strip_suffix(".self_attn.o_proj.weight") {
            Some(layer) => format!("{layer}.self_attn.to_out.0.weight"),
            None => rest.to_string(),
        }
    }

    /// The tensors this layout stores split into row blocks.
    pub fn fusions(self) -> &'static [RowFusion] {
        match self {
            Layout::Official => &[],
            Layout::Diffusers => DIFFUSERS_FUSIONS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_names() {
        let d = Layout::Diffusers;
        assert_eq!(d.stored_name("pos_embed"), "patch_embedding.pos_embed");
        assert_eq!(
            d.stored_name("x_embedder.proj.weight"),
            "patch_embedding.output_image_proj.weight"
        );
        assert_eq!(
            d.stored_name("final_layer.adaLN_modulation.1.bias"),
            "norm_out.linear.bias"
        );
        assert_eq!(
            d.stored_name("llm.layers.3.self_attn.o_proj.weight"),
            "layers.3.self_attn.to_out.0.weight"
        );
        assert_eq!(
            d.stored_name("llm.layers.3.self_attn.qkv_proj.weight"),
            "layers.3.self_attn.qkv_proj.weight"
        );
        assert_eq!(d.stored_name("llm.norm.weight"), "norm.weight");
        assert_eq!(
            Layout::Official.stored_name("llm.norm.weight"),
            "llm.norm.weight"
        );
    }
}
