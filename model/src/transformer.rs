//! The OmniGen transformer: sequence assembly (text embeddings with condition-image tokens spliced in,
//! the time token, the noisy-latent tokens), the Phi-3 decoder, the final adaLN layer and unpatchify.
//! Its output is the rectified-flow velocity (data − noise).

use candle_core::{DType, Device, Tensor};

use crate::attention::AttnMask;
use crate::config::OmniGenConfig;
use crate::embed::{PatchEmbed, TimestepEmbedder};
use crate::error::{Error, Result};
use crate::final_layer::{unpatchify, FinalLayer};
use crate::kv_cache::CacheUse;
use crate::layer::Phi3Decoder;
use crate::nn::Linear;
use crate::pos_embed::PosEmbed;
use crate::quant::{LinearSource, WeightFormat, DECODER_LINEARS};
use crate::rope::LongRope;
pub use crate::span::ImageSpan;
use candle_nn::VarBuilder;

/// The explicit tensors of one forward call (what the official `OmniGen.forward` receives).
#[derive(Debug, Clone, Copy)]
pub struct ForwardInput<'a> {
    /// Noisy latents `[B,4,h,w]`.
    pub x: &'a Tensor,
    /// Timesteps `[B]` (f32, in [0,1]).
    pub timestep: &'a Tensor,
    /// Token ids `[B,T]` (left-padded). `None` on cached steps.
    pub input_ids: Option<&'a Tensor>,
    /// Scaled condition-image latents `[1,4,h_i,w_i]` in span order.
    pub condition_latents: &'a [Tensor],
    /// Spans to overwrite with the condition-image tokens, in the same order as `condition_latents`.
    pub image_spans: &'a [ImageSpan],
    /// 0/1 mask `[B,Sq,Sk]` (1 = may attend).
    pub attention_mask: &'a Tensor,
    /// Positions `[B,Sq]`.
    pub position_ids: &'a Tensor,
}

/// OmniGen's transformer (`OmniGen` module of the reference).
#[derive(Debug, Clone)]
pub struct Transformer {
    cfg: OmniGenConfig,
    x_embedder: PatchEmbed,
    input_x_embedder: PatchEmbed,
    pos_embed: PosEmbed,
    time_token: TimestepEmbedder,
    t_embedder: TimestepEmbedder,
    pub(crate) llm: Phi3Decoder,
    final_layer: FinalLayer,
    rope: LongRope,
    dtype: DType,
    device: Device,
}

impl Transformer {
    /// Builds the transformer from checkpoint weights (official names), the decoder's linear layers from
    /// `source`.
    pub(crate) fn new(cfg: &OmniGenConfig, vb: &VarBuilder, source: LinearSource) -> Result<Self> {
        Self::placed(cfg, vb, None, source)
    }

    /// [`Transformer::new`], with the decoder layers offloaded when `host_vb` (a host-memory view of the
    /// same checkpoint) is given: they are read from it and streamed to the device as they run
    /// ([`crate::offload`]).
    pub(crate) fn placed(
        cfg: &OmniGenConfig,
        vb: &VarBuilder,
        host_vb: Option<&VarBuilder>,
        source: LinearSource,
    ) -> Result<Self> {
        let (h, p, c) = (cfg.hidden_size, cfg.patch_size, cfg.in_channels);
        Ok(Self {
            x_embedder: PatchEmbed::new(p, c, h, &vb.pp("x_embedder"))?,
            input_x_embedder: PatchEmbed::new(p, c, h, &vb.pp("input_x_embedder"))?,
            pos_embed: PosEmbed::new(cfg.pos_embed_max_size, h, vb)?,
            time_token: TimestepEmbedder::new(h, &vb.pp("time_token"))?,
            t_embedder: TimestepEmbedder::new(h, &vb.pp("t_embedder"))?,
            llm: Phi3Decoder::new(cfg, &vb.pp("llm"), host_vb.map(|h| h.pp("llm")), source)?,
            final_layer: FinalLayer::new(h, p, c, &vb.pp("final_layer"))?,
            rope: LongRope::new(cfg),
            dtype: vb.dtype(),
            device: vb.device().clone(),
            cfg: cfg.clone(),
        })
    }

    /// Loads a transformer from a config file and weight files (official names unless `diffusers_names`),
    /// without a tokenizer: for benchmarks and tools that build inputs themselves.
    pub fn load(
        config: &std::path::Path,
        weights: &[std::path::PathBuf],
        diffusers_names: bool,
        dtype: DType,
        format: WeightFormat,
        device: &Device,
    ) -> Result<Self> {
        if dtype == DType::F16 {
            return Err(Error::F16Unsupported);
        }
        let cfg = OmniGenConfig::from_file(config)?;
        let layout = if diffusers_names {
            crate::weights::Layout::Diffusers
        } else {
            crate::weights::Layout::Official
        };
        let vb = crate::weights::open(weights, layout, dtype, device)?;
        Self::new(&cfg, &vb, LinearSource::Quantize(format))
    }

    /// The decoder's quantizable linear layers, with their official names
    /// (`llm.layers.N.self_attn.qkv_proj`, …): what LoRA adapters target and quantization stores.
    pub(crate) fn decoder_linears_mut(&mut self) -> impl Iterator<Item = (String, &mut Linear)> {
        self.llm
            .layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, layer)| {
                let linears = [
                    &mut layer.self_attn.qkv_proj,
                    &mut layer.self_attn.o_proj,
                    &mut layer.mlp.gate_up_proj,
                    &mut layer.mlp.down_proj,
                ];
                DECODER_LINEARS
                    .into_iter()
                    .zip(linears)
                    .map(move |(name, linear)| (format!("llm.layers.{i}.{name}"), linear))
            })
    }

    /// The token embedding table.
    pub(crate) fn token_embedding(&self) -> &crate::nn::Embedding {
        &self.llm.embed_tokens
    }

    /// Bytes of the token embedding table, and whether it is stored quantized.
    pub fn token_embedding_bytes(&self) -> (usize, bool) {
        let table = &self.llm.embed_tokens;
        (table.bytes(), table.qtensor().is_some())
    }

    /// Bytes held by the decoder's linear weights (quantized or not), and how many of those layers are
    /// stored quantized.
    pub fn decoder_linear_bytes(&self) -> (usize, usize) {
        let linears = self.llm.layers.iter().flat_map(|l| {
            [
                &l.self_attn.qkv_proj,
                &l.self_attn.o_proj,
                &l.mlp.gate_up_proj,
                &l.mlp.down_proj,
            ]
        });
        linears.fold((0, 0), |(bytes, quantized), l| {
            (
                bytes + l.weight_bytes(),
                quantized + usize::from(l.block_type().is_some()),
            )
        })
    }

    /// The position table, which holds only per-axis values when the checkpoint's is the formula's.
    pub fn pos_embed(&self) -> &PosEmbed {
        &self.pos_embed
    }

    /// Whether the decoder layers are offloaded to host memory (`offload_model`).
    pub fn is_offloaded(&self) -> bool {
        self.llm.is_offloaded()
    }

    /// Configuration.
    pub fn config(&self) -> &OmniGenConfig {
        &self.cfg
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The LongRoPE tables (exposed for tests of the long/short switch).
    pub fn rope(&self) -> &LongRope {
        &self.rope
    }

    /// Patch tokens plus cropped positions for a latent `[B,c,h,w]`.
    fn image_tokens(&self, embedder: &PatchEmbed, latent: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = latent.dims4()?;
        let p = self.cfg.patch_size;
        let tokens = embedder.forward(&latent.to_dtype(self.dtype)?)?;
        let pos = self.pos_embed.crop(h / p, w / p)?;
        Ok(tokens.broadcast_add(&pos)?)
    }

    /// Text embeddings `[B,T,C]` with every image span overwritten by its condition-image tokens.
    fn condition_embeddings(
        &self,
        ids: &Tensor,
        latents: &[Tensor],
        spans: &[ImageSpan],
    ) -> Result<Tensor> {
        let cond = self.llm.embed(ids)?;
        if spans.is_empty() {
            return Ok(cond);
        }
        if spans.len() != latents.len() {
            return Err(Error::Input(format!(
                "{} image spans but {} condition latents",
                spans.len(),
                latents.len()
            )));
        }
        let (b, t, _) = cond.dims3()?;
        let mut rows = Vec::with_capacity(b);
        for row in 0..b {
            let mut pieces = Vec::new();
            let mut at = 0;
            let mut row_spans: Vec<(usize, &ImageSpan)> = spans
                .iter()
                .enumerate()
                .filter(|(_, s)| s.row == row)
                .collect();
            row_spans.sort_by_key(|(_, s)| s.start);
            for (k, span) in row_spans {
                let tokens = self
                    .image_tokens(&self.input_x_embedder, &latents[k])?
                    .squeeze(0)?;
                let n = tokens.dim(0)?;
                if span.start < at || span.end > t || span.end - span.start != n {
                    return Err(Error::Input(format!(
                        "image span {}..{} of row {row} does not fit {n} image tokens in {t} text tokens",
                        span.start, span.end
                    )));
                }
                if span.start > at {
                    pieces.push(cond.get(row)?.narrow(0, at, span.start - at)?);
                }
                pieces.push(tokens);
                at = span.end;
            }
            if at < t {
                pieces.push(cond.get(row)?.narrow(0, at, t - at)?);
            }
            rows.push(Tensor::cat(&pieces, 0)?);
        }
        Ok(Tensor::stack(&rows, 0)?)
    }

    /// Additive mask `[B,1,Sq,Sk]`: 0 where allowed, the dtype's finite minimum where blocked.
    fn additive_mask(&self, mask01: &Tensor) -> Result<Tensor> {
        let min = match self.dtype {
            DType::BF16 => half::bf16::MIN.to_f64(),
            DType::F16 => half::f16::MIN.to_f64(),
            _ => f32::MIN as f64,
        };
        let inv = (1.0 - mask01.to_dtype(DType::F32)?)?;
        Ok((inv * min)?.to_dtype(self.dtype)?.unsqueeze(1)?)
    }

    /// One forward call; returns the velocity `[B,c,h,w]` in the model dtype.
    pub(crate) fn forward_with(&self, input: &ForwardInput, cache: CacheUse) -> Result<Tensor> {
        let (b, _, h, w) = input.x.dims4()?;
        let p = self.cfg.patch_size;
        let n_img = (h / p) * (w / p);
        let time_tok = self
            .time_token
            .forward(input.timestep, self.dtype)?
            .unsqueeze(1)?;
        let x_tokens = self.image_tokens(&self.x_embedder, input.x)?;
        let seq = match input.input_ids {
            Some(ids) => {
                let cond =
                    self.condition_embeddings(ids, input.condition_latents, input.image_spans)?;
                Tensor::cat(&[&cond, &time_tok, &x_tokens], 1)?
            }
            None => Tensor::cat(&[&time_tok, &x_tokens], 1)?,
        };
        let sq = seq.dim(1)?;
        let kv_len = match &cache {
            CacheUse::Read(c) => c.cached_len() + sq,
            _ => sq,
        };
        let (mb, mq, mk) = input.attention_mask.dims3()?;
        if mb != b || mq != sq || mk != kv_len {
            return Err(Error::Input(format!(
                "attention mask {:?} does not match batch {b}, {sq} query tokens and {kv_len} key tokens",
                input.attention_mask.dims()
            )));
        }
        // Rows that attend to every key they see skip the mask add (cheaper attention, same numbers).
        let seen = match &cache {
            CacheUse::Fill {
                tail,
                attend_cropped: true,
                ..
            } => input.attention_mask.narrow(2, 0, sq - tail)?,
            _ => input.attention_mask.clone(),
        };
        let mask = AttnMask {
            additive: self.additive_mask(input.attention_mask)?,
            free_from: first_unmasked_row(&seen)?,
        };
        let (cos, sin) = self.rope.cos_sin(input.position_ids, kv_len, self.dtype)?;
        let hidden = self.llm.forward(&seq, &cos, &sin, &mask, cache)?;
        let img = hidden.narrow(1, sq - n_img, n_img)?;
        let c = self.t_embedder.forward(input.timestep, self.dtype)?;
        let out = self.final_layer.forward(&img, &c)?;
        unpatchify(&out, p, self.cfg.in_channels, h, w)
    }

    /// One forward call without a KV cache.
    pub fn forward(&self, input: &ForwardInput) -> Result<Tensor> {
        self.forward_with(input, CacheUse::Off)
    }

    /// One forward call that fills `cache` (step 0). With `reference_quirk` the image and time tokens
    /// attend only to the condition tokens, as the official `use_kv_cache=True` does on its first step.
    pub fn forward_fill_cache(
        &self,
        input: &ForwardInput,
        cache: &mut crate::kv_cache::KvCache,
        reference_quirk: bool,
    ) -> Result<Tensor> {
        let (_, _, h, w) = input.x.dims4()?;
        let p = self.cfg.patch_size;
        let tail = (h / p) * (w / p) + 1;
        self.forward_with(
            input,
            CacheUse::Fill {
                cache,
                tail,
                attend_cropped: reference_quirk,
            },
        )
    }

    /// One forward call on a filled cache: `input_ids` must be `None`, mask and positions cover only the
    /// time and image tokens as queries.
    pub fn forward_cached(
        &self,
        input: &ForwardInput,
        cache: &crate::kv_cache::KvCache,
    ) -> Result<Tensor> {
        if !cache.is_filled() {
            return Err(Error::Input(
                "forward_cached needs a cache filled by a first step".into(),
            ));
        }
        self.forward_with(input, CacheUse::Read(cache))
    }
}

/// The first query row `r` such that every row `r..` of every batch entry of a 0/1 mask `[B,Sq,Sk]` is all
/// ones (`Sq` when the last row is masked somewhere).
fn first_unmasked_row(mask01: &Tensor) -> Result<usize> {
    let row_min = mask01
        .to_dtype(DType::F32)?
        .min(candle_core::D::Minus1)?
        .min(0)?;
    let rows = row_min.to_vec1::<f32>()?;
    Ok(rows.iter().rposition(|&m| m < 0.5).map_or(0, |i| i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_unmasked_row_finds_the_all_ones_tail() -> Result<()> {
        let dev = Device::Cpu;
        // Row 0: causal (masked), rows 1..3 all ones.
        let m = Tensor::from_vec(vec![1f32, 0., 0., 1., 1., 1., 1., 1., 1.], (1, 3, 3), &dev)?;
        assert_eq!(first_unmasked_row(&m)?, 1);
        // A padded second batch row masks column 0 everywhere: no free rows.
        let pad = Tensor::from_vec(vec![1f32, 0., 0., 0., 1., 1., 0., 1., 1.], (1, 3, 3), &dev)?;
        assert_eq!(first_unmasked_row(&Tensor::cat(&[&m, &pad], 0)?)?, 3);
        assert_eq!(
            first_unmasked_row(&Tensor::ones((1, 2, 2), DType::F32, &dev)?)?,
            0
        );
        Ok(())
    }
}
