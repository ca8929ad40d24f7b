//! The demo model's world (issue 13): a deterministic generator of one-shape pictures and their
//! instructions in OmniGen's unified multi-task format, and an evaluator that reads such pictures back
//! without any neural network.
//!
//! ```
//! use omnigen_demo::{eval, prompt, render, Rng, Scene, Combos};
//!
//! let scene = Scene::draw(&mut Rng::new(7), Combos::Seen);
//! let picture = render(&scene, 64);
//! let verdict = eval::evaluate(&prompt::text_to_image(&scene), &picture).unwrap();
//! assert!(verdict.fully_correct());
//! ```
//!
//! The world: shapes circle, square, triangle; colours red, green, blue, yellow, purple; backgrounds
//! white, black, gray, cyan; positions left, right, top, bottom, center; [`HELD_OUT`] combinations never
//! appear in a training split. See model/demo/README.md.

mod dataset;
mod error;
pub mod eval;
pub mod prompt;
mod render;
mod rng;
mod tasks;
mod world;

pub use dataset::{read_scenes, write_dataset, DatasetSpec, Written};
pub use error::Error;
pub use render::{render, render_outline, OUTLINE_INK, OUTLINE_PAPER};
pub use rng::Rng;
pub use tasks::{EditKind, Input, Sample, Split, Task};
pub use world::{
    distance2, is_held_out, Background, Colour, Combos, Jitter, Position, Rgb, Scene, Shape,
    HELD_OUT,
};

/// The default picture side (pixels).
pub const DEFAULT_SIZE: u32 = 64;

/// FNV-1a (64 bit) of bytes: the golden hashes of the generator's pictures.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3)
    })
}
