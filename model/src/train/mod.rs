//! Training (issue 13): the rectified-flow loss through the transformer with candle's autograd, trainable
//! LoRA factors on `qkv_proj`/`o_proj` as the official trainer configures PEFT (or every parameter), gradient
//! clipping and AdamW as `torch.nn.utils.clip_grad_norm_` and `torch.optim.AdamW` compute them, the official
//! JSONL data format through the inference processor, and the [`Trainer`] loop with checkpoints that resume
//! bit for bit. Parity with the official `omnigen==1.0.3` trainer: `tests/train_parity.rs`.

mod adapter;
pub mod checkpoint;
pub mod data;
mod full;
pub mod log;
mod loss;
mod optim;
mod trainer;
pub mod vae;

pub use adapter::{write_peft, LoraAdapter, LoraConfig, LORA_TARGETS};
pub use data::{BadData, DataError, DataFault, Dataset, Example, ImagePrep};
pub use full::{save_model_folder, FullModel};
pub use loss::{flow_loss, timestep_from_normal, FlowBatch};
pub use optim::{clip_grad_norm, OptimConfig, Optimizer};
pub use trainer::{Duration, RunOutcome, StepReport, TrainConfig, TrainMode, Trainer};
