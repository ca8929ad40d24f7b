//! Small building blocks shared by the transformer: linear layers whose weights can be replaced (LoRA
//! merge), RMSNorm with the reference's dtype handling, and a parameter-free LayerNorm.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, D};

use crate::error::Result;
use crate::quant::{LinearSource, WeightFormat};
use candle_nn::VarBuilder;

/// A linear layer `y = x Wᵀ + b` whose weight can be swapped after loading (LoRA merging) and stored
/// quantized ([`crate::quant`]).
#[derive(Debug, Clone)]
pub enum Linear {
    /// The weight `[out, in]` in the compute dtype.
    Dense(candle_nn::Linear),
    /// The weight in ggml blocks; `dtype` is the compute dtype the layer returns.
    Quantized {
        matmul: QMatMul,
        qtensor: Arc<QTensor>,
        bias: Option<Tensor>,
        dtype: DType,
    },
}

impl Linear {
    /// Loads `weight` `[out, in]` (and `bias` `[out]` when `bias` is true) under `vb`.
    pub(crate) fn new(in_dim: usize, out_dim: usize, bias: bool, vb: &VarBuilder) -> Result<Self> {
        let w = vb.get(&[out_dim, in_dim], "weight")?;
        let b = if bias {
            Some(vb.get(&[out_dim], "bias")?)
        } else {
            None
        };
        Ok(Self::from_parts(w, b))
    }

    /// Loads a bias-free decoder layer from `source`: read from the checkpoint and stored in a format
    /// (the full-precision copy is dropped before the next layer loads, so loading never holds more than
    /// one layer unquantized), or read already quantized from a pre-quantized model.
    pub(crate) fn new_in(
        in_dim: usize,
        out_dim: usize,
        vb: &VarBuilder,
        source: LinearSource,
    ) -> Result<Self> {
        let name = format!("{}.weight", vb.prefix());
        match source {
            LinearSource::Stored(stored) if stored.contains(&name) => {
                let qtensor = Arc::new(stored.get(&name, &[out_dim, in_dim], vb.device())?);
                Ok(Self::Quantized {
                    matmul: QMatMul::QTensor(Arc::clone(&qtensor)),
                    qtensor,
                    bias: None,
                    dtype: vb.dtype(),
                })
            }
            // A layer the writer left in full precision is in the checkpoint with the rest.
            LinearSource::Stored(_) => Self::new(in_dim, out_dim, false, vb),
            LinearSource::Quantize(format) => {
                let mut linear = Self::new(in_dim, out_dim, false, vb)?;
                linear.quantize(format)?;
                Ok(linear)
            }
        }
    }

    /// The quantized weight, when it is stored quantized.
    pub(crate) fn qtensor(&self) -> Option<Arc<QTensor>> {
        match self {
            Self::Dense(_) => None,
            Self::Quantized { qtensor, .. } => Some(Arc::clone(qtensor)),
        }
    }

    /// Builds from explicit tensors.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self::Dense(candle_nn::Linear::new(weight, bias))
    }

    /// The `[out, in]` weight (dequantized to f32 when it is stored quantized).
    pub fn weight(&self) -> Result<Tensor> {
        Ok(match self {
            Self::Dense(l) => l.weight().clone(),
            Self::Quantized { qtensor, .. } => qtensor.dequantize(&qtensor.device())?,
        })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Self::Dense(l) => l.weight().dims2()?,
            Self::Quantized { qtensor, .. } => qtensor.shape().dims2()?,
        })
    }

    /// The ggml block type when the weight is stored quantized.
    pub fn block_type(&self) -> Option<GgmlDType> {
        match self {
            Self::Dense(_) => None,
            Self::Quantized { qtensor, .. } => Some(qtensor.dtype()),
        }
    }

    /// Bytes the weight and bias occupy.
    pub fn weight_bytes(&self) -> usize {
        match self {
            Self::Dense(l) => tensor_bytes(l.weight()) + l.bias().map_or(0, tensor_bytes),
            Self::Quantized { qtensor, bias, .. } => {
                qtensor.storage_size_in_bytes() + bias.as_ref().map_or(0, tensor_bytes)
            }
        }
    }

    /// Stores the weight in `format` ([`WeightFormat::block_type`] decides per layer; a layer no block
    /// size fits stays as it is). A quantized layer is re-quantized from its dequantized weight.
    pub fn quantize(&mut self, format: WeightFormat) -> Result<()> {
        let (_, in_dim) = self.dims()?;
        if let Some(block) = format.block_type(in_dim) {
            *self = self.rebuilt(self.weight()?, Some(block))?;
        }
        Ok(())
    }

    /// Replaces the weight by `weight + delta` (delta in any float dtype; added in f32, stored as the
    /// weight was: in its dtype, or re-quantized in its block type).
    pub fn add_to_weight(&mut self, delta: &Tensor) -> Result<()> {
        let merged = (self.weight()?.to_dtype(DType::F32)? + delta.to_dtype(DType::F32)?)?;
        *self = self.rebuilt(merged, self.block_type())?;
        Ok(())
    }

    /// This layer's bias and compute dtype around a new weight, dense or in `block`.
    fn rebuilt(&self, weight: Tensor, block: Option<GgmlDType>) -> Result<Self> {
        let (bias, dtype) = match self {
            Self::Dense(l) => (l.bias().cloned(), l.weight().dtype()),
            Self::Quantized { bias, dtype, .. } => (bias.clone(), *dtype),
        };
        Ok(match block {
            None => Self::from_parts(weight.to_dtype(dtype)?, bias),
            Some(block) => {
                let qtensor = Arc::new(QTensor::quantize(&weight, block)?);
                Self::Quantized {
                    matmul: QMatMul::QTensor(Arc::clone(&qtensor)),
                    qtensor,
                    bias,
                    dtype,
                }
            }
        })
    }

    /// Applies the layer over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Dense(l) => Ok(l.forward(x)?),
            Self::Quantized {
                matmul,
                bias,
                dtype,
                ..
            } => {
                // The CPU kernels take f32/bf16 activations as they are; the GPU ones want f32.
                let input = if x.device().is_cpu() {
                    x.contiguous()?
                } else {
                    x.to_dtype(DType::F32)?.contiguous()?
                };
                let y = matmul.forward(&input)?.to_dtype(*dtype)?;
                Ok(match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                })
            }
        }
    }
}

fn tensor_bytes(t: &Tensor) -> usize {
    t.elem_count() * t.dtype().size_in_bytes()
}

/// The token embedding table, dense or quantized (rows are dequantized as they are looked up).
#[derive(Debug, Clone)]
pub enum Embedding {
    /// `[rows, hidden]` in the compute dtype.
    Dense(Tensor),
    /// ggml blocks; `dtype` is the compute dtype of the looked-up rows.
    Quantized { qtensor: Arc<QTensor>, dtype: DType },
}

impl Embedding {
    /// Loads `weight` `[rows, hidden]` under `vb` from `source` (a pre-quantized model's file, or the
    /// checkpoint, quantized when the format quantizes embeddings).
    pub(crate) fn new(
        rows: usize,
        hidden: usize,
        vb: &VarBuilder,
        source: LinearSource,
    ) -> Result<Self> {
        let name = format!("{}.weight", vb.prefix());
        let format = match source {
            LinearSource::Stored(stored) if stored.contains(&name) => {
                return Ok(Self::Quantized {
                    qtensor: Arc::new(stored.get(&name, &[rows, hidden], vb.device())?),
                    dtype: vb.dtype(),
                });
            }
            LinearSource::Stored(_) => WeightFormat::Full,
            LinearSource::Quantize(format) => format,
        };
        let table = vb.get(&[rows, hidden], "weight")?;
        Ok(match format.embedding_block_type(hidden) {
            Some(block) => Self::Quantized {
                qtensor: Arc::new(QTensor::quantize(&table, block)?),
                dtype: table.dtype(),
            },
            None => Self::Dense(table),
        })
    }

    /// Rows for `ids` (u32, flat) as `[ids, hidden]` in the compute dtype.
    pub fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Dense(table) => table.index_select(ids, 0)?,
            Self::Quantized { qtensor, dtype } => qtensor.embedding(ids)?.to_dtype(*dtype)?,
        })
    }

    /// The row width.
    pub fn hidden(&self) -> Result<usize> {
        Ok(match self {
            Self::Dense(table) => table.dim(1)?,
            Self::Quantized { qtensor, .. } => qtensor.shape().dims2()?.1,
        })
    }

    /// Bytes the table occupies.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Dense(table) => tensor_bytes(table),
            Self::Quantized { qtensor, .. } => qtensor.storage_size_in_bytes(),
        }
    }

    /// The quantized table, when it is stored quantized.
    pub(crate) fn qtensor(&self) -> Option<Arc<QTensor>> {
        match self {
            Self::Dense(_) => None,
            Self::Quantized { qtensor, .. } => Some(Arc::clone(qtensor)),
        }
    }
}

/// Phi-3 RMSNorm: normalise in f32, cast back, then multiply by the weight in the model dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub(crate) fn new(dim: usize, eps: f64, vb: &VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(&[dim], "weight")?,
            eps,
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 {
            return Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)?);
        }
        // Reduced precision: round the normalised value before the weight multiply, as HF does.
        let xf = x.to_dtype(DType::F32)?;
        let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = xf.broadcast_mul(&(var + self.eps)?.sqrt()?.recip()?)?;
        Ok(normed.to_dtype(x.dtype())?.broadcast_mul(&self.weight)?)
    }
}

/// LayerNorm without affine parameters, computed in f32 and cast back.
pub fn layer_norm_no_affine(x: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let centered = xf.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.to_dtype(dtype)?)
}
