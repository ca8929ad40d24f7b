//! One Phi-3 decoder layer (pre-norm attention and gated-SiLU MLP, no biases) and the decoder stack.

use candle_core::{Tensor, D};

use crate::attention::{Attention, AttnMask, LayerCache};
use crate::config::OmniGenConfig;
use crate::cpu_kernels;
use crate::error::Result;
use crate::kv_cache::CacheUse;
use crate::nn::{Embedding, Linear, RmsNorm};
use crate::quant::LinearSource;
use candle_nn::VarBuilder;

/// `mlp`: `down_proj(up * silu(gate))` with `(gate, up) = gate_up_proj(x).chunk(2)`.
#[derive(Debug, Clone)]
pub struct Mlp {
    pub(crate) gate_up_proj: Linear,
    pub(crate) down_proj: Linear,
    inter: usize,
}

impl Mlp {
    pub(crate) fn new(cfg: &OmniGenConfig, vb: &VarBuilder, source: LinearSource) -> Result<Self> {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_up_proj: Linear::new_in(h, 2 * i, &vb.pp("gate_up_proj"), source)?,
            down_proj: Linear::new_in(i, h, &vb.pp("down_proj"), source)?,
            inter: i,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = self.gate_up_proj.forward(x)?;
        let h = if cpu_kernels::is_cpu_f32(&[&gu]) {
            // One pass over gate_up instead of narrow, silu and multiply.
            cpu_kernels::silu_mul(&gu, self.inter)?
        } else {
            let gate = gu.narrow(D::Minus1, 0, self.inter)?;
            let up = gu.narrow(D::Minus1, self.inter, self.inter)?;
            (up * candle_nn::ops::silu(&gate)?)?
        };
        self.down_proj.forward(&h)
    }
}

/// `llm.layers.N`.
#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub(crate) self_attn: Attention,
    pub(crate) mlp: Mlp,
    input_layernorm: RmsNorm,
    post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    pub(crate) fn new(cfg: &OmniGenConfig, vb: &VarBuilder, source: LinearSource) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            self_attn: Attention::new(h, cfg.num_attention_heads, &vb.pp("self_attn"), source)?,
            mlp: Mlp::new(cfg, &vb.pp("mlp"), source)?,
            input_layernorm: RmsNorm::new(h, cfg.rms_norm_eps, &vb.pp("input_layernorm"))?,
            post_attention_layernorm: RmsNorm::new(
                h,
                cfg.rms_norm_eps,
                &vb.pp("post_attention_layernorm"),
            )?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &AttnMask,
        cache: LayerCache,
    ) -> Result<Tensor> {
        let a = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, cos, sin, mask, cache)?;
        let x = (x + a)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        Ok((x + m)?)
    }
}

/// `llm`: token embedding, decoder layers and the final RMSNorm (no `lm_head`).
#[derive(Debug, Clone)]
pub struct Phi3Decoder {
    pub(crate) embed_tokens: Embedding,
    pub(crate) layers: Vec<DecoderLayer>,
    norm: RmsNorm,
}

impl Phi3Decoder {
    pub(crate) fn new(cfg: &OmniGenConfig, vb: &VarBuilder, source: LinearSource) -> Result<Self> {
        let embed_tokens = Embedding::new(
            cfg.vocab_size,
            cfg.hidden_size,
            &vb.pp("embed_tokens"),
            source,
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, &vb.pp("layers").pp(i), source))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, &vb.pp("norm"))?,
        })
    }

    /// Embeds `[B,T]` token ids.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?.to_dtype(candle_core::DType::U32)?;
        Ok(self
            .embed_tokens
            .lookup(&flat)?
            .reshape((b, t, self.embed_tokens.hidden()?))?)
    }

    /// Runs all layers and the final norm over `x` `[B,Sq,C]`.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &AttnMask,
        cache: CacheUse,
    ) -> Result<Tensor> {
        let mut h = x.clone();
        match cache {
            CacheUse::Off => {
                for layer in &self.layers {
                    h = layer.forward(&h, cos, sin, mask, LayerCache::Off)?;
                }
            }
            CacheUse::Fill {
                cache,
                tail,
                attend_cropped,
            } => {
                cache.layers = vec![None; self.layers.len()];
                for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
                    let c = LayerCache::Fill {
                        slot,
                        tail,
                        attend_cropped,
                    };
                    h = layer.forward(&h, cos, sin, mask, c)?;
                }
            }
            CacheUse::Read(cache) => {
                for (i, layer) in self.layers.iter().enumerate() {
                    let kv = cache
                        .layers
                        .get(i)
                        .and_then(|l| l.as_ref())
                        .ok_or_else(|| {
                            crate::error::Error::Input(format!(
                                "KV cache has no entry for layer {i}: fill it first"
                            ))
                        })?;
                    h = layer.forward(&h, cos, sin, mask, LayerCache::Read(kv))?;
                }
            }
        }
        self.norm.forward(&h)
    }
}
