//! Small building blocks shared by the transformer: linear layers whose weights can be replaced (LoRA
//! merge), quantized, or given a trainable LoRA branch; the token embedding; RMSNorm with the reference's
//! dtype handling; and a parameter-free LayerNorm.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Module, Tensor, Var, D};

use crate::error::Result;
use crate::quant::{LinearSource, WeightFormat};
use candle_nn::VarBuilder;

/// A linear layer `y = x Wᵀ + b` whose weight can be swapped after loading (LoRA merging) and stored
/// quantized ([`crate::quant`]), with an optional trainable LoRA branch `+ scaling · (x Aᵀ) Bᵀ` (PEFT's
/// `lora.Linear`, without dropout).
#[derive(Debug, Clone)]
pub struct Linear {
    base: Base,
    lora: Option<LoraBranch>,
}

/// The frozen part of a [`Linear`].
#[derive(Debug, Clone)]
enum Base {
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

/// Trainable LoRA factors of one layer: `A` `[r, in]`, `B` `[out, r]`, `scaling` = alpha / r.
#[derive(Debug, Clone)]
pub(crate) struct LoraBranch {
    pub a: Var,
    pub b: Var,
    pub scaling: f64,
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
                Ok(Self::with_base(Base::Quantized {
                    matmul: QMatMul::QTensor(Arc::clone(&qtensor)),
                    qtensor,
                    bias: None,
                    dtype: vb.dtype(),
                }))
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

    /// Builds from explicit tensors.
    pub fn from_parts(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self::with_base(Base::Dense(candle_nn::Linear::new(weight, bias)))
    }

    fn with_base(base: Base) -> Self {
        Self { base, lora: None }
    }

    /// Attaches (or replaces) the trainable LoRA branch.
    pub(crate) fn set_lora(&mut self, branch: Option<LoraBranch>) {
        self.lora = branch;
    }

    /// The quantized weight, when it is stored quantized.
    pub(crate) fn qtensor(&self) -> Option<Arc<QTensor>> {
        match &self.base {
            Base::Dense(_) => None,
            Base::Quantized { qtensor, .. } => Some(Arc::clone(qtensor)),
        }
    }

    /// The `[out, in]` weight (dequantized to f32 when it is stored quantized).
    pub fn weight(&self) -> Result<Tensor> {
        Ok(match &self.base {
            Base::Dense(l) => l.weight().clone(),
            Base::Quantized { qtensor, .. } => qtensor.dequantize(&qtensor.device())?,
        })
    }

    /// `(out, in)`.
    pub fn dims(&self) -> Result<(usize, usize)> {
        Ok(match &self.base {
            Base::Dense(l) => l.weight().dims2()?,
            Base::Quantized { qtensor, .. } => qtensor.shape().dims2()?,
        })
    }

    /// The ggml block type when the weight is stored quantized.
    pub fn block_type(&self) -> Option<GgmlDType> {
        match &self.base {
            Base::Dense(_) => None,
            Base::Quantized { qtensor, .. } => Some(qtensor.dtype()),
        }
    }

    /// Bytes the weight and bias occupy (the frozen part).
    pub fn weight_bytes(&self) -> usize {
        match &self.base {
            Base::Dense(l) => tensor_bytes(l.weight()) + l.bias().map_or(0, tensor_bytes),
            Base::Quantized { qtensor, bias, .. } => {
                qtensor.storage_size_in_bytes() + bias.as_ref().map_or(0, tensor_bytes)
            }
        }
    }

    /// Stores the weight in `format` ([`WeightFormat::block_type`] decides per layer; a layer no block
    /// size fits stays as it is). A quantized layer is re-quantized from its dequantized weight.
    pub fn quantize(&mut self, format: WeightFormat) -> Result<()> {
        let (_, in_dim) = self.dims()?;
        if let Some(block) = format.block_type(in_dim) {
            self.base = self.rebuilt(self.weight()?, Some(block))?;
        }
        Ok(())
    }

    /// Replaces the weight by `weight + delta` (delta in any float dtype; added in f32, stored as the
    /// weight was: in its dtype, or re-quantized in its block type).
    pub fn add_to_weight(&mut self, delta: &Tensor) -> Result<()> {
        let weight = self.weight()?;
        // An offloaded layer's weight lives in host memory, wherever the delta was computed.
        let delta = delta.to_device(weight.device())?.to_dtype(DType::F32)?;
        let merged = (weight.to_dtype(DType::F32)? + delta)?;
        self.base = self.rebuilt(merged, self.block_type())?;
        Ok(())
    }

    /// This layer's bias and compute dtype around a new weight, dense or in `block`.
    fn rebuilt(&self, weight: Tensor, block: Option<GgmlDType>) -> Result<Base> {
        let (bias, dtype) = match &self.base {
            Base::Dense(l) => (l.bias().cloned(), l.weight().dtype()),
            Base::Quantized { bias, dtype, .. } => (bias.clone(), *dtype),
        };
        Ok(match block {
            None => Base::Dense(candle_nn::Linear::new(weight.to_dtype(dtype)?, bias)),
            Some(block) => {
                let qtensor = Arc::new(QTensor::quantize(&weight, block)?);
                Base::Quantized {
                    matmul: QMatMul::QTensor(Arc::clone(&qtensor)),
                    qtensor,
                    bias,
                    dtype,
                }
            }
        })
    }

    /// A copy of the layer on `device` (dense weights copied, quantized blocks copied as they are). The
    /// LoRA branch is copied as plain values: the copy is for inference ([`crate::offload`]).
    pub(crate) fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        let base = match &self.base {
            Base::Dense(l) => Base::Dense(candle_nn::Linear::new(
                l.weight().to_device(device)?,
                l.bias().map(|b| b.to_device(device)).transpose()?,
            )),
            Base::Quantized {
                qtensor,
                bias,
                dtype,
                ..
            } => {
                let qtensor = if qtensor.device().same_device(device) {
                    Arc::clone(qtensor)
                } else {
                    let storage = candle_core::quantized::QStorage::from_data(
                        qtensor.data()?,
                        device,
                        qtensor.dtype(),
                    )?;
                    Arc::new(QTensor::new(storage, qtensor.shape().clone())?)
                };
                Base::Quantized {
                    matmul: QMatMul::QTensor(Arc::clone(&qtensor)),
                    qtensor,
                    bias: bias.as_ref().map(|b| b.to_device(device)).transpose()?,
                    dtype: *dtype,
                }
            }
        };
        let lora = match &self.lora {
            None => None,
            Some(l) => Some(LoraBranch {
                a: Var::from_tensor(&l.a.as_tensor().to_device(device)?)?,
                b: Var::from_tensor(&l.b.as_tensor().to_device(device)?)?,
                scaling: l.scaling,
            }),
        };
        Ok(Self { base, lora })
    }

    /// Applies the layer over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = match &self.base {
            Base::Dense(l) => l.forward(x)?,
            Base::Quantized {
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
                match bias {
                    Some(b) => y.broadcast_add(b)?,
                    None => y,
                }
            }
        };
        let Some(lora) = &self.lora else {
            return Ok(y);
        };
        // PEFT: base(x) + lora_B(lora_A(x)) * scaling.
        let down = candle_nn::Linear::new(lora.a.as_tensor().clone(), None).forward(x)?;
        let up = candle_nn::Linear::new(lora.b.as_tensor().clone(), None).forward(&down)?;
        Ok((y + (up * lora.scaling)?)?)
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

    /// A copy on `device`.
    pub(crate) fn to_device(&self, device: &candle_core::Device) -> Result<Self> {
        Ok(Self {
            weight: self.weight.to_device(device)?,
            eps: self.eps,
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.dtype() == DType::F32 && !crate::grad::needs_grad(&[x, &self.weight]) {
            return Ok(candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)?);
        }
        // Reduced precision (round the normalised value before the weight multiply, as HF does) or
        // training (candle's fused rms_norm has no backward): plain ops.
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
