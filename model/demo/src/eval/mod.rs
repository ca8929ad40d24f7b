//! The evaluator: plain image analysis, no neural network. [`read`] decides what a picture shows
//! (background, shape, colour, position, or "uncertain" for each); [`evaluate`] checks a picture against a
//! text-to-image prompt, [`judge`] against any expected scene.

mod analysis;
mod components;
mod judge;

pub use analysis::{read, Measures, Reading};
pub use judge::{evaluate, judge, Expectation, Verdict};
