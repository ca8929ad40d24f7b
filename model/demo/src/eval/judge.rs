//! Checking a reading against what was asked.

use std::fmt;

use image::RgbImage;

use super::analysis::{read, Reading};
use crate::error::Error;
use crate::prompt::parse_text_to_image;
use crate::world::{Background, Colour, Position, Scene, Shape};

/// What a picture should show; `None` attributes are not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expectation {
    /// The shape.
    pub shape: Option<Shape>,
    /// Its colour.
    pub colour: Option<Colour>,
    /// Where it sits.
    pub position: Option<Position>,
    /// The background.
    pub background: Option<Background>,
}

impl Expectation {
    /// Every attribute of `scene`.
    pub fn scene(scene: &Scene) -> Self {
        Self {
            shape: Some(scene.shape),
            colour: Some(scene.colour),
            position: Some(scene.position),
            background: Some(scene.background),
        }
    }

    /// Every attribute a text-to-image prompt names.
    pub fn prompt(prompt: &str) -> Result<Self, Error> {
        let r = parse_text_to_image(prompt).ok_or_else(|| Error::Prompt(prompt.to_string()))?;
        Ok(Self {
            shape: Some(r.shape),
            colour: Some(r.colour),
            position: Some(r.position),
            background: Some(r.background),
        })
    }
}

/// Which attributes came out right: `None` for those not asked, `Some(false)` also when the picture leaves
/// an attribute uncertain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// Right shape.
    pub shape: Option<bool>,
    /// Right colour.
    pub colour: Option<bool>,
    /// Right position.
    pub position: Option<bool>,
    /// Right background.
    pub background: Option<bool>,
    /// What the picture was read as.
    pub reading: Reading,
}

impl Verdict {
    /// Whether every attribute asked for is right.
    pub fn fully_correct(&self) -> bool {
        [self.shape, self.colour, self.position, self.background]
            .iter()
            .all(|v| v.unwrap_or(true))
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.reading;
        let word = |w: Option<&'static str>| w.unwrap_or("?");
        write!(
            f,
            "read: {} {} {}, {} background ({})",
            word(r.colour.map(Colour::word)),
            word(r.shape.map(Shape::word)),
            word(r.position.map(Position::word)),
            word(r.background.map(Background::word)),
            if self.fully_correct() {
                "correct"
            } else {
                "wrong"
            }
        )
    }
}

/// Checks `image` against `expected`.
pub fn judge(expected: &Expectation, image: &RgbImage) -> Verdict {
    let reading = read(image);
    fn check<T: PartialEq>(want: Option<T>, got: Option<T>) -> Option<bool> {
        want.map(|w| got.as_ref() == Some(&w))
    }
    Verdict {
        shape: check(expected.shape, reading.shape),
        colour: check(expected.colour, reading.colour),
        position: check(expected.position, reading.position),
        background: check(expected.background, reading.background),
        reading,
    }
}

/// Checks `image` against a text-to-image prompt (`a red circle on the left, gray background`).
pub fn evaluate(prompt: &str, image: &RgbImage) -> Result<Verdict, Error> {
    Ok(judge(&Expectation::prompt(prompt)?, image))
}
