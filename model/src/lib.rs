//! OmniGen v1 in candle, numerically matching the official `omnigen==1.0.3` implementation.
//!
//! This crate knows tensors, weights and prompts; it knows nothing of graphs.

pub mod processor;
