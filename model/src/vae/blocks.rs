//! VAE building blocks with diffusers' tensor names: ResNet block, single-head mid-block attention,
//! down/up samplers, and the mid block.

use candle_core::{Module, Tensor};
use candle_nn::{Conv2d, Conv2dConfig};

use crate::error::Result;
use candle_nn::VarBuilder;

const EPS: f64 = 1e-6;

pub(crate) fn conv(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: &VarBuilder,
) -> Result<Conv2d> {
    let w = vb.get(&[cout, cin, k, k], "weight")?;
    let b = vb.get(&[cout], "bias")?;
    let cfg = Conv2dConfig {
        padding,
        stride,
        ..Default::default()
    };
    Ok(Conv2d::new(w, Some(b), cfg))
}

/// candle's `GroupNorm` (the whole-map path) with its parameters kept for the banded path
/// ([`super::tiled`]), which candle's type does not expose.
#[derive(Debug, Clone)]
pub(crate) struct GroupNorm {
    inner: candle_nn::GroupNorm,
    pub weight: Tensor,
    pub bias: Tensor,
    pub groups: usize,
    pub eps: f64,
}

impl GroupNorm {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.inner.forward(x)?)
    }
}

pub(crate) fn group_norm(groups: usize, c: usize, vb: &VarBuilder) -> Result<GroupNorm> {
    let weight = vb.get(&[c], "weight")?;
    let bias = vb.get(&[c], "bias")?;
    Ok(GroupNorm {
        inner: candle_nn::GroupNorm::new(weight.clone(), bias.clone(), c, groups, EPS)?,
        weight,
        bias,
        groups,
        eps: EPS,
    })
}

/// `ResnetBlock2D` without time embedding.
#[derive(Debug, Clone)]
pub(crate) struct ResnetBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(cin: usize, cout: usize, groups: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            norm1: group_norm(groups, cin, &vb.pp("norm1"))?,
            conv1: conv(cin, cout, 3, 1, 1, &vb.pp("conv1"))?,
            norm2: group_norm(groups, cout, &vb.pp("norm2"))?,
            conv2: conv(cout, cout, 3, 1, 1, &vb.pp("conv2"))?,
            shortcut: if cin != cout {
                Some(conv(cin, cout, 1, 1, 0, &vb.pp("conv_shortcut"))?)
            } else {
                None
            },
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self
            .conv1
            .forward(&candle_nn::ops::silu(&self.norm1.forward(x)?)?)?;
        let h = self
            .conv2
            .forward(&candle_nn::ops::silu(&self.norm2.forward(&h)?)?)?;
        let skip = match &self.shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// Single-head self-attention over all pixels, with residual (`attentions.0`).
#[derive(Debug, Clone)]
pub(crate) struct AttentionBlock {
    pub group_norm: GroupNorm,
    pub q: candle_nn::Linear,
    pub k: candle_nn::Linear,
    pub v: candle_nn::Linear,
    pub out: candle_nn::Linear,
}

impl AttentionBlock {
    pub fn new(c: usize, groups: usize, vb: &VarBuilder) -> Result<Self> {
        // Newer diffusers names first, then the pre-0.14 names that some SDXL VAE files still use.
        let names: [&str; 5] = if vb.contains_tensor("to_q.weight") {
            ["group_norm", "to_q", "to_k", "to_v", "to_out.0"]
        } else {
            ["group_norm", "query", "key", "value", "proj_attn"]
        };
        let lin = |name: &str| -> Result<candle_nn::Linear> {
            let v = vb.pp(name);
            let w = v.get(&[c, c], "weight")?;
            Ok(candle_nn::Linear::new(w, Some(v.get(&[c], "bias")?)))
        };
        Ok(Self {
            group_norm: group_norm(groups, c, &vb.pp(names[0]))?,
            q: lin(names[1])?,
            k: lin(names[2])?,
            v: lin(names[3])?,
            out: lin(names[4])?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let hs = self
            .group_norm
            .forward(x)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?;
        let q = self.q.forward(&hs)?;
        let k = self.k.forward(&hs)?;
        let v = self.v.forward(&hs)?;
        let scale = 1.0 / (c as f64).sqrt();
        let scores = (q * scale)?.matmul(&k.t()?)?;
        // candle's plain softmax when training: the fused kernel has no backward (crate::grad).
        let probs = crate::grad::softmax_last_dim(&scores)?;
        let o = self.out.forward(&probs.matmul(&v)?)?;
        let o = o.transpose(1, 2)?.reshape((b, c, h, w))?;
        Ok((o + x)?)
    }
}

/// `UNetMidBlock2D`: resnet, attention, resnet.
#[derive(Debug, Clone)]
pub(crate) struct MidBlock {
    pub res0: ResnetBlock,
    pub attn: Option<AttentionBlock>,
    pub res1: ResnetBlock,
}

impl MidBlock {
    pub fn new(c: usize, groups: usize, attention: bool, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            res0: ResnetBlock::new(c, c, groups, &vb.pp("resnets.0"))?,
            attn: if attention {
                Some(AttentionBlock::new(c, groups, &vb.pp("attentions.0"))?)
            } else {
                None
            },
            res1: ResnetBlock::new(c, c, groups, &vb.pp("resnets.1"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = self.res0.forward(x)?;
        if let Some(a) = &self.attn {
            h = a.forward(&h)?;
        }
        self.res1.forward(&h)
    }
}

/// `Downsample2D`: pad right/bottom by one, then a stride-2 3×3 conv.
#[derive(Debug, Clone)]
pub(crate) struct Downsample {
    conv: Conv2d,
}

impl Downsample {
    pub fn new(c: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(c, c, 3, 2, 0, &vb.pp("conv"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
        Ok(self.conv.forward(&x)?)
    }
}

/// `Upsample2D`: nearest ×2, then a 3×3 conv.
#[derive(Debug, Clone)]
pub(crate) struct Upsample {
    pub conv: Conv2d,
}

impl Upsample {
    pub fn new(c: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(c, c, 3, 1, 1, &vb.pp("conv"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (_, _, h, w) = x.dims4()?;
        Ok(self.conv.forward(&x.upsample_nearest2d(h * 2, w * 2)?)?)
    }
}
