//! The crate's own deterministic normal generator, so that a seed gives the same noise on every run and on
//! every device: SplitMix64 seeding, xoshiro256** and Box–Muller, drawn on the CPU in f32 and then moved.

use candle_core::{Device, Shape, Tensor};

use crate::error::Result;

/// xoshiro256** state seeded from a u64 through SplitMix64.
#[derive(Debug, Clone)]
pub struct NoiseRng {
    s: [u64; 4],
}

impl NoiseRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1].
    fn uniform_open0(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }

    /// `n` standard normal samples (Box–Muller pairs).
    pub fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let r = (-2.0 * self.uniform_open0().ln()).sqrt();
            let theta = std::f64::consts::TAU * self.uniform_open0();
            out.push((r * theta.cos()) as f32);
            out.push((r * theta.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// A standard-normal f32 tensor of `shape` for `seed`, identical on every device.
pub fn gaussian(seed: u64, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
    let shape = shape.into();
    let data = NoiseRng::new(seed).normals(shape.elem_count());
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?.to_device(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_roughly_standard() {
        let a = NoiseRng::new(7).normals(20_001);
        let b = NoiseRng::new(7).normals(20_001);
        assert_eq!(a, b);
        assert_ne!(a, NoiseRng::new(8).normals(20_001));
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }

    #[test]
    fn tensor_has_shape() -> Result<()> {
        let t = gaussian(1, (1, 4, 3, 5), &Device::Cpu)?;
        assert_eq!(t.dims(), &[1, 4, 3, 5]);
        Ok(())
    }
}
