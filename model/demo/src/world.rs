//! The demo world's vocabulary: shapes, colours, backgrounds and positions, their words and palette, a
//! scene (one shape on one background), and the held-out shape/colour combinations.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// An RGB colour.
pub type Rgb = [u8; 3];

macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in a fixed order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word the prompts use.
            pub fn word(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The value a prompt word names.
            pub fn from_word(word: &str) -> Option<Self> {
                match word { $($word => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

vocabulary!(
    /// The shape drawn.
    Shape { Circle => "circle", Square => "square", Triangle => "triangle" }
);
vocabulary!(
    /// The shape's colour.
    Colour { Red => "red", Green => "green", Blue => "blue", Yellow => "yellow", Purple => "purple" }
);
vocabulary!(
    /// The background colour.
    Background { White => "white", Black => "black", Gray => "gray", Cyan => "cyan" }
);
vocabulary!(
    /// Where the shape sits.
    Position { Left => "left", Right => "right", Top => "top", Bottom => "bottom", Center => "center" }
);

impl Colour {
    /// The colour's pixel value.
    pub fn rgb(self) -> Rgb {
        match self {
            Colour::Red => [220, 40, 40],
            Colour::Green => [40, 170, 60],
            Colour::Blue => [40, 80, 220],
            Colour::Yellow => [235, 210, 40],
            Colour::Purple => [150, 50, 200],
        }
    }
}

impl Background {
    /// The background's pixel value.
    pub fn rgb(self) -> Rgb {
        match self {
            Background::White => [255, 255, 255],
            Background::Black => [0, 0, 0],
            Background::Gray => [128, 128, 128],
            Background::Cyan => [70, 210, 230],
        }
    }
}

impl Position {
    /// The phrase of a text-to-image prompt: `on the left`, `at the top`, `in the center`.
    pub fn phrase(self) -> &'static str {
        match self {
            Position::Left => "on the left",
            Position::Right => "on the right",
            Position::Top => "at the top",
            Position::Bottom => "at the bottom",
            Position::Center => "in the center",
        }
    }

    /// The nominal centre of the shape, as fractions of the image side (x, y; y grows downwards).
    pub fn anchor(self) -> (f64, f64) {
        const NEAR: f64 = 0.27;
        const FAR: f64 = 0.73;
        match self {
            Position::Left => (NEAR, 0.5),
            Position::Right => (FAR, 0.5),
            Position::Top => (0.5, NEAR),
            Position::Bottom => (0.5, FAR),
            Position::Center => (0.5, 0.5),
        }
    }
}

/// The shape/colour combinations that never appear in a training split (in an input or as the output): the
/// held-out split asks for exactly these, to measure generalisation to unseen combinations. Each shape and
/// three of the five colours are held out once; green and purple are seen with every shape.
pub const HELD_OUT: [(Shape, Colour); 3] = [
    (Shape::Triangle, Colour::Red),
    (Shape::Circle, Colour::Blue),
    (Shape::Square, Colour::Yellow),
];

/// Whether `shape` in `colour` is a held-out combination.
pub fn is_held_out(shape: Shape, colour: Colour) -> bool {
    HELD_OUT.contains(&(shape, colour))
}

/// The small random variations of a rendering (fractions of the image side), drawn once per scene and kept by
/// edits so that an edit changes only what its instruction names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Jitter {
    /// The shape's size: the side of its bounding box.
    pub size: f64,
    /// Horizontal offset from the position's anchor.
    pub dx: f64,
    /// Vertical offset from the position's anchor.
    pub dy: f64,
}

impl Jitter {
    /// The nominal size (40% of the side), no offset.
    pub const NOMINAL: Jitter = Jitter {
        size: 0.4,
        dx: 0.0,
        dy: 0.0,
    };

    /// A size in [0.36, 0.44) and offsets in [-0.03, 0.03).
    pub fn draw(rng: &mut Rng) -> Self {
        Self {
            size: rng.range(0.36, 0.44),
            dx: rng.range(-0.03, 0.03),
            dy: rng.range(-0.03, 0.03),
        }
    }
}

/// One shape on one background.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// The shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Where it sits.
    pub position: Position,
    /// The background.
    pub background: Background,
    /// Size and offset variations.
    pub jitter: Jitter,
}

/// Which combinations a draw may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combos {
    /// Only combinations that are not held out.
    Seen,
    /// Only the held-out combinations.
    HeldOut,
    /// Any combination.
    Any,
}

impl Scene {
    /// A random scene whose shape/colour combination is allowed by `combos`.
    pub fn draw(rng: &mut Rng, combos: Combos) -> Self {
        let (shape, colour) = draw_combo(rng, combos);
        Self {
            shape,
            colour,
            position: rng.pick(Position::ALL),
            background: rng.pick(Background::ALL),
            jitter: Jitter::draw(rng),
        }
    }

    /// Whether this scene's shape/colour combination is held out.
    pub fn is_held_out(&self) -> bool {
        is_held_out(self.shape, self.colour)
    }
}

/// A shape/colour combination allowed by `combos`.
pub fn draw_combo(rng: &mut Rng, combos: Combos) -> (Shape, Colour) {
    let all: Vec<(Shape, Colour)> = Shape::ALL
        .iter()
        .flat_map(|&s| Colour::ALL.iter().map(move |&c| (s, c)))
        .filter(|&(s, c)| match combos {
            Combos::Seen => !is_held_out(s, c),
            Combos::HeldOut => is_held_out(s, c),
            Combos::Any => true,
        })
        .collect();
    rng.pick(&all)
}

/// Squared distance of two colours.
pub fn distance2(a: Rgb, b: Rgb) -> u32 {
    (0..3)
        .map(|i| {
            let d = a[i] as i32 - b[i] as i32;
            (d * d) as u32
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for &s in Shape::ALL {
            assert_eq!(Shape::from_word(s.word()), Some(s));
        }
        for &c in Colour::ALL {
            assert_eq!(Colour::from_word(c.word()), Some(c));
        }
        for &b in Background::ALL {
            assert_eq!(Background::from_word(b.word()), Some(b));
        }
        for &p in Position::ALL {
            assert_eq!(Position::from_word(p.word()), Some(p));
        }
        assert_eq!(Shape::from_word("hexagon"), None);
    }

    #[test]
    fn every_shape_colour_is_far_from_every_background() {
        // The evaluator separates foreground from background by colour distance.
        for &c in Colour::ALL {
            for &b in Background::ALL {
                let d = (distance2(c.rgb(), b.rgb()) as f64).sqrt();
                assert!(d > 100.0, "{c:?} on {b:?}: {d}");
            }
        }
    }

    #[test]
    fn draws_respect_the_held_out_set() {
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            assert!(!Scene::draw(&mut rng, Combos::Seen).is_held_out());
            assert!(Scene::draw(&mut rng, Combos::HeldOut).is_held_out());
        }
    }
}
