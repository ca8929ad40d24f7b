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

/// `conv` applied to `x`: candle's convolution, or, when a gradient is needed (training), the same
/// convolution as shifted views and one matrix product. candle's convolution backward runs a naive
/// transposed convolution on the CPU (70% of a VAE training step); the views' and the product's backward
/// are copies and matrix products.
pub(crate) fn conv_forward(conv: &Conv2d, x: &Tensor) -> Result<Tensor> {
    if !crate::grad::needs_grad(&[x, conv.weight()]) {
        return Ok(conv.forward(x)?);
    }
    let (p, s) = (conv.config().padding, conv.config().stride);
    let w = conv.weight();
    let (cout, cin, kh, kw) = w.dims4()?;
    let x = if p > 0 {
        x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?
    } else {
        x.clone()
    };
    let (b, _, hp, wp) = x.dims4()?;
    let (oh, ow) = ((hp - kh) / s + 1, (wp - kw) / s + 1);
    let mut views = Vec::with_capacity(kh * kw);
    for ky in 0..kh {
        for kx in 0..kw {
            let v = x
                .narrow(2, ky, (oh - 1) * s + 1)?
                .narrow(3, kx, (ow - 1) * s + 1)?;
            views.push(if s > 1 { every_nth(&v, s, oh, ow)? } else { v });
        }
    }
    // [B, cin, kh·kw, oh, ow]: the weight's (cin, ky, kx) order.
    let cols = Tensor::stack(&views, 2)?.reshape((b, cin * kh * kw, oh * ow))?;
    let y = w
        .reshape((cout, cin * kh * kw))?
        .broadcast_matmul(&cols)?
        .reshape((b, cout, oh, ow))?;
    Ok(match conv.bias() {
        Some(bias) => y.broadcast_add(&bias.reshape((1, cout, 1, 1))?)?,
        None => y,
    })
}

/// Every `s`-th row and column of `v` `[B,C,(oh−1)s+1,(ow−1)s+1]`: `[B,C,oh,ow]`.
fn every_nth(v: &Tensor, s: usize, oh: usize, ow: usize) -> Result<Tensor> {
    let (b, c, _, _) = v.dims4()?;
    Ok(v.pad_with_zeros(2, 0, s - 1)?
        .pad_with_zeros(3, 0, s - 1)?
        .reshape((b, c, oh, s, ow, s))?
        .narrow(3, 0, 1)?
        .narrow(5, 0, 1)?
        .reshape((b, c, oh, ow))?)
}

/// Nearest ×2 upsampling: candle's kernel, or a broadcast when a gradient is needed (the kernel's backward
/// is a grouped convolution, one per channel).
fn upsample2x(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if !crate::grad::needs_grad(&[x]) {
        return Ok(x.upsample_nearest2d(h * 2, w * 2)?);
    }
    Ok(x.reshape((b, c, h, 1, w, 1))?
        .broadcast_as((b, c, h, 2, w, 2))?
        .reshape((b, c, h * 2, w * 2))?)
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
        let h = conv_forward(&self.conv1, &candle_nn::ops::silu(&self.norm1.forward(x)?)?)?;
        let h = conv_forward(
            &self.conv2,
            &candle_nn::ops::silu(&self.norm2.forward(&h)?)?,
        )?;
        let skip = match &self.shortcut {
            Some(c) => conv_forward(c, x)?,
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
    pub conv: Conv2d,
}

impl Downsample {
    pub fn new(c: usize, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            conv: conv(c, c, 3, 2, 0, &vb.pp("conv"))?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
        conv_forward(&self.conv, &x)
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
        conv_forward(&self.conv, &upsample2x(x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn the_training_convolution_and_upsampling_equal_candles_and_keep_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (2, 3, 8, 8), &dev)?;
        for (k, stride, padding, pad_right) in [(3, 1, 1, false), (3, 2, 0, true), (1, 1, 0, false)]
        {
            let w = Tensor::randn(0f32, 1.0, (5, 3, k, k), &dev)?;
            let b = Tensor::randn(0f32, 1.0, 5, &dev)?;
            let cfg = candle_nn::Conv2dConfig {
                padding,
                stride,
                ..Default::default()
            };
            let conv = Conv2d::new(w, Some(b), cfg);
            let input = if pad_right {
                x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?
            } else {
                x.as_tensor().clone()
            };
            let plain = conv_forward(&conv, &input)?;
            let fused = conv.forward(&input.detach())?;
            assert_eq!(plain.dims(), fused.dims());
            assert!(max_diff(&plain, &fused) < 1e-4, "k {k} stride {stride}");
            // The same gradients as candle's own convolution backward, for the input and the weight.
            let wv = Var::from_tensor(conv.weight())?;
            let tracked = Conv2d::new(wv.as_tensor().clone(), conv.bias().cloned(), cfg);
            let probe = Tensor::randn(0f32, 1.0, plain.shape(), &dev)?;
            let g = (conv_forward(&tracked, &input)? * &probe)?
                .sum_all()?
                .backward()?;
            let x_native = Var::from_tensor(&input.detach())?;
            let native = x_native
                .as_tensor()
                .conv2d(wv.as_tensor(), padding, stride, 1, 1)?
                .broadcast_add(&conv.bias().unwrap().reshape((1, 5, 1, 1))?)?;
            let gn = (native * &probe)?.sum_all()?.backward()?;
            let (gw, gw_native) = (
                g.get(wv.as_tensor()).unwrap(),
                gn.get(wv.as_tensor()).unwrap(),
            );
            assert!(
                max_diff(gw, gw_native) < 1e-3,
                "weight gradient, k {k} stride {stride}"
            );
            let gx = g.get(x.as_tensor()).expect("a gradient reaches x");
            let gx_native = gn.get(x_native.as_tensor()).unwrap();
            let gx_native = if pad_right {
                gx_native.narrow(2, 0, 8)?.narrow(3, 0, 8)?
            } else {
                gx_native.clone()
            };
            assert!(
                max_diff(gx, &gx_native) < 1e-3,
                "input gradient, k {k} stride {stride}"
            );
        }
        let up = upsample2x(x.as_tensor())?;
        let want = x.as_tensor().detach().upsample_nearest2d(16, 16)?;
        assert_eq!(max_diff(&up, &want), 0.0);
        Ok(())
    }
}
