//! The VAE encoder and decoder stacks.

use candle_core::Tensor;
use candle_nn::Conv2d;

use super::blocks::{
    conv, conv_forward, group_norm, Downsample, GroupNorm, MidBlock, ResnetBlock, Upsample,
};
use super::config::VaeConfig;
use crate::error::Result;
use candle_nn::VarBuilder;

#[derive(Debug, Clone)]
pub(crate) struct Level {
    pub resnets: Vec<ResnetBlock>,
    pub down: Option<Downsample>,
    pub up: Option<Upsample>,
}

/// `encoder`: pixels `[B,3,H,W]` → moments `[B,2·latent,H/8,W/8]`.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    pub conv_in: Conv2d,
    pub levels: Vec<Level>,
    pub mid: MidBlock,
    pub norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Encoder {
    pub fn new(cfg: &VaeConfig, vb: &VarBuilder) -> Result<Self> {
        let ch = &cfg.block_out_channels;
        let g = cfg.norm_num_groups;
        let mut levels = Vec::new();
        let mut cout = ch[0];
        for (i, &c) in ch.iter().enumerate() {
            let cin = cout;
            cout = c;
            let vbl = vb.pp("down_blocks").pp(i);
            let resnets = resnet_stack(cfg.layers_per_block, cin, cout, g, &vbl)?;
            let down = if i + 1 < ch.len() {
                Some(Downsample::new(cout, &vbl.pp("downsamplers.0"))?)
            } else {
                None
            };
            levels.push(Level {
                resnets,
                down,
                up: None,
            });
        }
        let last = ch[ch.len() - 1];
        Ok(Self {
            conv_in: conv(cfg.in_channels, ch[0], 3, 1, 1, &vb.pp("conv_in"))?,
            levels,
            mid: MidBlock::new(last, g, cfg.mid_block_add_attention, &vb.pp("mid_block"))?,
            norm_out: group_norm(g, last, &vb.pp("conv_norm_out"))?,
            conv_out: conv(last, 2 * cfg.latent_channels, 3, 1, 1, &vb.pp("conv_out"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = conv_forward(&self.conv_in, x)?;
        for level in &self.levels {
            for r in &level.resnets {
                h = r.forward(&h)?;
            }
            if let Some(d) = &level.down {
                h = d.forward(&h)?;
            }
        }
        let h = self.mid.forward(&h)?;
        let h = candle_nn::ops::silu(&self.norm_out.forward(&h)?)?;
        conv_forward(&self.conv_out, &h)
    }
}

/// `decoder`: latents `[B,latent,h,w]` (unscaled) → pixels `[B,3,8h,8w]` in about [-1,1].
#[derive(Debug, Clone)]
pub(crate) struct Decoder {
    pub conv_in: Conv2d,
    pub mid: MidBlock,
    pub levels: Vec<Level>,
    pub norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Decoder {
    pub fn new(cfg: &VaeConfig, vb: &VarBuilder) -> Result<Self> {
        let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let g = cfg.norm_num_groups;
        let mut levels = Vec::new();
        let mut cout = rev[0];
        for (i, &c) in rev.iter().enumerate() {
            let cin = cout;
            cout = c;
            let vbl = vb.pp("up_blocks").pp(i);
            // The decoder's up blocks hold one resnet more than the encoder's down blocks.
            let resnets = resnet_stack(cfg.layers_per_block + 1, cin, cout, g, &vbl)?;
            let up = if i + 1 < rev.len() {
                Some(Upsample::new(cout, &vbl.pp("upsamplers.0"))?)
            } else {
                None
            };
            levels.push(Level {
                resnets,
                down: None,
                up,
            });
        }
        let first = cfg.block_out_channels[0];
        Ok(Self {
            conv_in: conv(cfg.latent_channels, rev[0], 3, 1, 1, &vb.pp("conv_in"))?,
            mid: MidBlock::new(rev[0], g, cfg.mid_block_add_attention, &vb.pp("mid_block"))?,
            levels,
            norm_out: group_norm(g, first, &vb.pp("conv_norm_out"))?,
            conv_out: conv(first, cfg.out_channels, 3, 1, 1, &vb.pp("conv_out"))?,
        })
    }

    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let h = conv_forward(&self.conv_in, z)?;
        let mut h = self.mid.forward(&h)?;
        for level in &self.levels {
            for r in &level.resnets {
                h = r.forward(&h)?;
            }
            if let Some(u) = &level.up {
                h = u.forward(&h)?;
            }
        }
        let h = candle_nn::ops::silu(&self.norm_out.forward(&h)?)?;
        conv_forward(&self.conv_out, &h)
    }
}

/// `count` resnets of one level (`<vb>.resnets.<j>`): the first maps `cin` to `cout`, the rest keep `cout`.
fn resnet_stack(
    count: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    vb: &VarBuilder,
) -> Result<Vec<ResnetBlock>> {
    (0..count)
        .map(|j| {
            ResnetBlock::new(
                if j == 0 { cin } else { cout },
                cout,
                groups,
                &vb.pp("resnets").pp(j),
            )
        })
        .collect()
}
