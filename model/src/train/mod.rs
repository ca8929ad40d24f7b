//! Training (issue 13, the correctness core): the rectified-flow loss through the transformer with candle's
//! autograd, trainable LoRA factors on `qkv_proj`/`o_proj` as the official trainer configures PEFT, gradient
//! clipping and AdamW as `torch.nn.utils.clip_grad_norm_` and `torch.optim.AdamW` compute them, and saving the
//! adapter as a PEFT folder. Parity with the official `omnigen==1.0.3` trainer: `tests/train_parity.rs`.

mod adapter;
mod loss;
mod optim;
pub mod vae;

pub use adapter::{LoraAdapter, LoraConfig, LORA_TARGETS};
pub use loss::{flow_loss, timestep_from_normal, FlowBatch};
pub use optim::{clip_grad_norm, OptimConfig, Optimizer};
