//! `Latent`: scaled VAE latents, distinct from arbitrary tensors.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// Pixels per latent cell along each side (the VAE's downsampling factor).
pub const VAE_FACTOR: usize = 8;

/// VAE latents already multiplied by the VAE's scaling factor (and shifted), shape `[B,4,h,w]`, f32.
/// This is what the transformer consumes and produces, and what `Vae::decode` accepts.
#[derive(Debug, Clone)]
pub struct Latent(Tensor);

impl Latent {
    /// Wraps a `[B,c,h,w]` tensor (converted to f32).
    pub fn new(t: Tensor) -> Result<Self> {
        if t.rank() != 4 {
            return Err(Error::Input(format!(
                "a latent must be [B,c,h,w], got {:?}",
                t.dims()
            )));
        }
        Ok(Self(t.to_dtype(DType::F32)?))
    }

    /// The underlying tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.0
    }

    /// Consumes the wrapper.
    pub fn into_tensor(self) -> Tensor {
        self.0
    }

    /// `(height, width)` in pixels (latent size × [`VAE_FACTOR`]).
    pub fn pixel_size(&self) -> (usize, usize) {
        let d = self.0.dims();
        (d[2] * VAE_FACTOR, d[3] * VAE_FACTOR)
    }
}
