//! The official time grid (spec §7.1) and the Euler step with the reference's rounding.

use candle_core::{DType, Tensor};

use crate::error::Result;

/// `torch.linspace(0, 1, n+1)` in float32 as CPU torch computes it: the first half as `i·step`, the second
/// half as `1 − (n−i)·step` with a single rounding, `step = fl32(1/n)`.
pub fn linspace01(n: usize) -> Vec<f32> {
    if n == 0 {
        return vec![0.0];
    }
    let step = 1.0f32 / n as f32;
    let half = n.div_ceil(2);
    (0..=n)
        .map(|i| {
            if i < half {
                (i as f64 * step as f64) as f32
            } else {
                (1.0f64 - (n - i) as f64 * step as f64) as f32
            }
        })
        .collect()
}

/// The sigma (= t) table of `OmniGenScheduler(num_steps)`: `t / (t + s − s·t)` with `s = 1`, every op in
/// f32. `sigmas[0] = 0` is pure noise, `sigmas[n] = 1` the image.
pub fn sigmas(num_steps: usize) -> Vec<f32> {
    let s = 1.0f32;
    linspace01(num_steps)
        .into_iter()
        .map(|t| t / ((t + s) - s * t))
        .collect()
}

/// `z + dt·v` where `dt` is an f32 scalar: computed in f32 and rounded once per op to the latent dtype,
/// as torch's "opmath" does for bf16 tensors.
pub fn euler_step(z: &Tensor, v: &Tensor, dt: f32) -> Result<Tensor> {
    let dtype = z.dtype();
    if dtype == DType::F32 {
        return Ok((z + (v.to_dtype(DType::F32)? * dt as f64)?)?);
    }
    let prod = (v.to_dtype(DType::F32)? * dt as f64)?.to_dtype(dtype)?;
    Ok((z.to_dtype(DType::F32)? + prod.to_dtype(DType::F32)?)?.to_dtype(dtype)?)
}

/// `t · s` rounded to `t`'s dtype after an f32 multiply (a python-float scalar times a tensor in torch).
pub(crate) fn scale_like_torch(t: &Tensor, s: f64) -> Result<Tensor> {
    let dtype = t.dtype();
    if dtype == DType::F32 {
        return Ok((t * (s as f32) as f64)?);
    }
    Ok((t.to_dtype(DType::F32)? * (s as f32) as f64)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_table_ends_and_is_monotone() {
        for n in [1, 2, 4, 7, 50] {
            let s = sigmas(n);
            assert_eq!(s.len(), n + 1);
            assert_eq!(s[0], 0.0);
            assert_eq!(s[n], 1.0);
            assert!(s.windows(2).all(|w| w[1] > w[0]));
            for (i, v) in s.iter().enumerate() {
                assert!((*v as f64 - i as f64 / n as f64).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn linspace_uses_two_halves() {
        // n = 3: step = fl32(1/3); t[2] = fl32(1 - 1*step) differs from fl32(2*step) in the last bit.
        let t = linspace01(3);
        let step = 1.0f32 / 3.0;
        assert_eq!(t[1], step);
        assert_eq!(t[2], (1.0f64 - step as f64) as f32);
    }
}
