//! One Phi-3 decoder layer (pre-norm attention and gated-SiLU MLP, no biases) and the decoder stack.

use std::borrow::Cow;

use candle_core::{Device, Tensor, D};

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

    /// A copy on `device`.
    fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            gate_up_proj: self.gate_up_proj.to_device(device)?,
            down_proj: self.down_proj.to_device(device)?,
            inter: self.inter,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gu = self.gate_up_proj.forward(x)?;
        let h = if cpu_kernels::fused_applies(&[&gu]) {
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

    /// A copy on `device` (an offloaded layer's copy for one forward call).
    pub(crate) fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            self_attn: self.self_attn.to_device(device)?,
            mlp: self.mlp.to_device(device)?,
            input_layernorm: self.input_layernorm.to_device(device)?,
            post_attention_layernorm: self.post_attention_layernorm.to_device(device)?,
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

/// A decoder layer ready on the compute device (borrowed when resident, a copy when offloaded), with its
/// cached condition K/V there when the call reads the cache.
type LayerOnDevice<'a> = (Cow<'a, DecoderLayer>, Option<(Tensor, Tensor)>);

/// `llm`: token embedding, decoder layers and the final RMSNorm (no `lm_head`).
#[derive(Debug, Clone)]
pub struct Phi3Decoder {
    pub(crate) embed_tokens: Embedding,
    pub(crate) layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    /// The layers' weights live in host memory and are streamed to the compute device
    /// ([`crate::offload`]).
    offloaded: bool,
}

impl Phi3Decoder {
    /// Builds the decoder; its layers from `host_vb` when they are offloaded (a host-memory view of the
    /// checkpoint), else from `vb`.
    pub(crate) fn new(
        cfg: &OmniGenConfig,
        vb: &VarBuilder,
        host_vb: Option<VarBuilder>,
        source: LinearSource,
    ) -> Result<Self> {
        let offloaded = host_vb.is_some();
        let layers_vb = host_vb.unwrap_or_else(|| vb.clone());
        let embed_tokens = Embedding::new(
            cfg.vocab_size,
            cfg.hidden_size,
            &vb.pp("embed_tokens"),
            source,
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(cfg, &layers_vb.pp("layers").pp(i), source))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(cfg.hidden_size, cfg.rms_norm_eps, &vb.pp("norm"))?,
            offloaded,
        })
    }

    /// Whether the layers' weights are offloaded to host memory.
    pub fn is_offloaded(&self) -> bool {
        self.offloaded
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

    /// Runs all layers and the final norm over `x` `[B,Sq,C]` (on its device). Offloaded layers and
    /// cache entries are copied there one layer ahead of use.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &AttnMask,
        cache: CacheUse,
    ) -> Result<Tensor> {
        let device = x.device();
        let (mut fill, read) = match cache {
            CacheUse::Off => (None, None),
            CacheUse::Fill {
                cache,
                tail,
                attend_cropped,
            } => {
                cache.layers = vec![None; self.layers.len()];
                (Some((cache, tail, attend_cropped)), None)
            }
            CacheUse::Read(cache) => (None, Some(cache)),
        };
        let streamed = self.offloaded || read.is_some_and(|c| c.is_offloaded());
        let fetch = |i: usize| -> Result<LayerOnDevice<'_>> {
            let layer = if self.offloaded {
                Cow::Owned(self.layers[i].to_device(device)?)
            } else {
                Cow::Borrowed(&self.layers[i])
            };
            let kv = read.map(|c| c.layer_on(i, device)).transpose()?;
            Ok((layer, kv))
        };
        let mut h = x.clone();
        crate::offload::walk(self.layers.len(), streamed, fetch, |i, (layer, kv)| {
            h = match (&mut fill, &kv) {
                (Some((cache, tail, attend_cropped)), _) => {
                    let mut slot = None;
                    let c = LayerCache::Fill {
                        slot: &mut slot,
                        tail: *tail,
                        attend_cropped: *attend_cropped,
                    };
                    let out = layer.forward(&h, cos, sin, mask, c)?;
                    let kv = slot.ok_or_else(|| {
                        crate::error::Error::Input(format!("layer {i} filled no cache entry"))
                    })?;
                    cache.store(i, kv)?;
                    out
                }
                (None, Some(kv)) => layer.forward(&h, cos, sin, mask, LayerCache::Read(kv))?,
                (None, None) => layer.forward(&h, cos, sin, mask, LayerCache::Off)?,
            };
            Ok(())
        })?;
        self.norm.forward(&h)
    }
}
