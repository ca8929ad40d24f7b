//! The decoder and the encoder run in row bands, for pictures whose whole-map pass would not fit in
//! memory.
//!
//! Every operation still sees the whole feature map, so the result is the whole-map
//! decode's (up to float summation order): GroupNorm statistics are accumulated over all bands before
//! any band is normalised, each 3×3 convolution reads its band plus one row of context on each side,
//! the nearest-neighbour upsampling happens band by band inside the convolution that follows it (and the
//! encoder's stride-2 downsampling convolution reads its band's rows `2r .. 2r+2`), and the mid-block
//! attention runs over chunks of query rows against all keys. What is bounded is everything
//! *besides* the maps themselves: no operation materialises more than one band's worth of temporaries (the
//! convolution's column buffer, GroupNorm's centred copies, the attention scores), and the peak is about
//! three full-resolution maps instead of the score matrix (17 GB for a 2048² picture) plus several
//! GroupNorm temporaries. There are no tile seams, since there are no independent tiles.

use candle_core::{DType, Module, Tensor};
use candle_nn::Conv2d;

use super::blocks::{AttentionBlock, GroupNorm, MidBlock, ResnetBlock};
use super::coder::{Decoder, Encoder};
use crate::error::Result;

/// Bytes of temporaries one band may take (f32): ~64 MB.
pub const DEFAULT_BAND_BYTES: usize = 64 << 20;

/// The row bands of a map `rows` high, each at most `per_band` rows.
fn bands(rows: usize, per_band: usize) -> impl Iterator<Item = (usize, usize)> {
    let per_band = per_band.max(1);
    (0..rows)
        .step_by(per_band)
        .map(move |r0| (r0, (r0 + per_band).min(rows)))
}

/// Rows of a `[B, C, H, W]` map whose band of `factor` values per element fits `budget` bytes of f32.
fn rows_for(x: &Tensor, factor: usize, budget: usize) -> Result<usize> {
    let (b, c, _, w) = x.dims4()?;
    Ok((budget / (b * c * w * factor * 4).max(1)).max(1))
}

/// GroupNorm (then SiLU when `silu`) over `x`, statistics over the whole map, applied band by band.
fn norm(gn: &GroupNorm, x: &Tensor, silu: bool, budget: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let rows = rows_for(x, 2, budget)?;
    if rows >= h {
        // The whole map fits one band: the whole-map operation itself.
        let y = gn.forward(x)?;
        return Ok(if silu { candle_nn::ops::silu(&y)? } else { y });
    }
    let g = gn.groups;
    let per_group = (c / g * h * w) as f64;
    let grouped = |r0: usize, r1: usize| -> Result<Tensor> {
        Ok(x.narrow(2, r0, r1 - r0)?
            .to_dtype(DType::F32)?
            .contiguous()?
            .reshape((b, g, c / g, (r1 - r0) * w))?)
    };
    // Two passes, like candle's GroupNorm: the mean, then the mean square around it.
    let mut sum = Tensor::zeros((b, g, 1, 1), DType::F32, x.device())?;
    for (r0, r1) in bands(h, rows) {
        sum = (sum + grouped(r0, r1)?.sum_keepdim(3)?.sum_keepdim(2)?)?;
    }
    let mean = (sum / per_group)?;
    let mut sq = Tensor::zeros((b, g, 1, 1), DType::F32, x.device())?;
    for (r0, r1) in bands(h, rows) {
        let centred = grouped(r0, r1)?.broadcast_sub(&mean)?;
        sq = (sq + centred.sqr()?.sum_keepdim(3)?.sum_keepdim(2)?)?;
    }
    let std = ((sq / per_group)? + gn.eps)?.sqrt()?;
    let weight = gn.weight.reshape((1, c, 1, 1))?;
    let bias = gn.bias.reshape((1, c, 1, 1))?;
    let mut out = Vec::new();
    for (r0, r1) in bands(h, rows) {
        let normed = grouped(r0, r1)?
            .broadcast_sub(&mean)?
            .broadcast_div(&std)?
            .reshape((b, c, r1 - r0, w))?
            .to_dtype(x.dtype())?
            .broadcast_mul(&weight)?
            .broadcast_add(&bias)?;
        out.push(if silu {
            candle_nn::ops::silu(&normed)?
        } else {
            normed
        });
    }
    Ok(Tensor::cat(&out, 2)?)
}

/// A 3×3, stride-1, padding-1 convolution of `x`, or of `x` upsampled ×2 (nearest) when `upsample`,
/// band by band over the output rows.
fn conv3x3(conv: &Conv2d, x: &Tensor, upsample: bool, budget: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let scale = if upsample { 2 } else { 1 };
    let (out_h, out_w) = (h * scale, w * scale);
    // The column buffer holds 9 values per input element of the band.
    let rows = rows_for(x, 9 * scale, budget)?;
    if rows >= out_h {
        // The whole map fits one band: the whole-map operation itself.
        let x = if upsample {
            x.upsample_nearest2d(out_h, out_w)?
        } else {
            x.clone()
        };
        return Ok(conv.forward(&x)?);
    }
    banded_conv(conv, out_h, rows, 1, |r0, r1| {
        // Input rows r0-1 .. r1+1 of the (upsampled) map, zero rows beyond its edges.
        let (lo, hi) = (r0.saturating_sub(1), (r1 + 1).min(out_h));
        let band = if upsample {
            let (s0, s1) = (lo / 2, (hi - 1) / 2 + 1);
            x.narrow(2, s0, s1 - s0)?
                .upsample_nearest2d((s1 - s0) * 2, out_w)?
                .narrow(2, lo - 2 * s0, hi - lo)?
        } else {
            x.narrow(2, lo, hi - lo)?
        };
        Ok(band
            .pad_with_zeros(2, usize::from(r0 == 0), usize::from(r1 == out_h))?
            .pad_with_zeros(3, 1, 1)?)
    })
}

/// `conv` (no padding of its own, `stride`) over the padded input bands `band(r0, r1)` of the output row
/// bands of `rows` rows each, the bias added and the bands joined.
fn banded_conv(
    conv: &Conv2d,
    out_h: usize,
    rows: usize,
    stride: usize,
    band: impl Fn(usize, usize) -> Result<Tensor>,
) -> Result<Tensor> {
    let bias = conv
        .bias()
        .map(|b| b.reshape((1, b.dim(0)?, 1, 1)))
        .transpose()?;
    let mut out = Vec::new();
    for (r0, r1) in bands(out_h, rows) {
        let y = band(r0, r1)?.conv2d(conv.weight(), 0, stride, 1, 1)?;
        out.push(match &bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        });
    }
    Ok(Tensor::cat(&out, 2)?)
}

/// The encoder's `Downsample2D` (zero row and column appended at the bottom and right, then a 3×3,
/// stride-2, padding-0 convolution), band by band over the output rows.
fn downsample(conv: &Conv2d, x: &Tensor, budget: usize) -> Result<Tensor> {
    let (_, _, h, _) = x.dims4()?;
    let out_h = h / 2;
    // The column buffer holds 9 values per output element, a quarter of the input band's elements.
    let rows = rows_for(x, 9, budget)?.div_ceil(2).max(1);
    if rows >= out_h {
        let x = x.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?;
        return Ok(conv.forward(&x)?);
    }
    banded_conv(conv, out_h, rows, 2, |r0, r1| {
        // Output row r reads input rows 2r, 2r+1, 2r+2; the last one past the map is the zero pad.
        let (lo, hi) = (2 * r0, (2 * r1 + 1).min(h));
        Ok(x.narrow(2, lo, hi - lo)?
            .pad_with_zeros(2, 0, 2 * r1 + 1 - hi)?
            .pad_with_zeros(3, 0, 1)?)
    })
}

fn resnet(block: &ResnetBlock, x: &Tensor, budget: usize) -> Result<Tensor> {
    let h = conv3x3(
        &block.conv1,
        &norm(&block.norm1, x, true, budget)?,
        false,
        budget,
    )?;
    let h = conv3x3(
        &block.conv2,
        &norm(&block.norm2, &h, true, budget)?,
        false,
        budget,
    )?;
    let skip = match &block.shortcut {
        Some(c) => c.forward(x)?,
        None => x.clone(),
    };
    Ok((skip + h)?)
}

/// Single-head attention over all pixels, the scores computed for a chunk of query rows at a time.
fn attention(block: &AttentionBlock, x: &Tensor, budget: usize) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let n = h * w;
    let rows = (budget / (b * n * 4 * 2).max(1)).max(1);
    if rows >= n {
        return block.forward(x);
    }
    let hs = norm(&block.group_norm, x, false, budget)?
        .reshape((b, c, n))?
        .transpose(1, 2)?;
    let q = block.q.forward(&hs)?;
    let k = block.k.forward(&hs)?;
    let v = block.v.forward(&hs)?;
    drop(hs);
    let scale = 1.0 / (c as f64).sqrt();
    let kt = k.t()?;
    let mut out = Vec::new();
    for (r0, r1) in bands(n, rows) {
        let scores = (q.narrow(1, r0, r1 - r0)? * scale)?.matmul(&kt)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        out.push(probs.matmul(&v)?);
    }
    let o = block.out.forward(&Tensor::cat(&out, 1)?)?;
    let o = o.transpose(1, 2)?.reshape((b, c, h, w))?;
    Ok((o + x)?)
}

fn mid(block: &MidBlock, x: &Tensor, budget: usize) -> Result<Tensor> {
    let mut h = resnet(&block.res0, x, budget)?;
    if let Some(a) = &block.attn {
        h = attention(a, &h, budget)?;
    }
    resnet(&block.res1, &h, budget)
}

impl Decoder {
    /// [`Decoder::forward`] in row bands of about `budget` bytes of temporaries each.
    pub fn forward_tiled(&self, z: &Tensor, budget: usize) -> Result<Tensor> {
        let h = conv3x3(&self.conv_in, z, false, budget)?;
        let mut h = mid(&self.mid, &h, budget)?;
        for level in &self.levels {
            for r in &level.resnets {
                h = resnet(r, &h, budget)?;
            }
            if let Some(u) = &level.up {
                h = conv3x3(&u.conv, &h, true, budget)?;
            }
        }
        let h = norm(&self.norm_out, &h, true, budget)?;
        conv3x3(&self.conv_out, &h, false, budget)
    }
}

impl Encoder {
    /// [`Encoder::forward`] in row bands of about `budget` bytes of temporaries each.
    pub fn forward_tiled(&self, x: &Tensor, budget: usize) -> Result<Tensor> {
        let mut h = conv3x3(&self.conv_in, x, false, budget)?;
        for level in &self.levels {
            for r in &level.resnets {
                h = resnet(r, &h, budget)?;
            }
            if let Some(d) = &level.down {
                h = downsample(&d.conv, &h, budget)?;
            }
        }
        let h = mid(&self.mid, &h, budget)?;
        let h = norm(&self.norm_out, &h, true, budget)?;
        conv3x3(&self.conv_out, &h, false, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_rows_once() {
        let got: Vec<_> = bands(10, 4).collect();
        assert_eq!(got, [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(bands(3, 0).count(), 3);
    }
}
