//! The instructions, word for word: text-to-image prompts (`a red circle on the left, gray background`)
//! and the instructions of the image-conditioned tasks, with OmniGen's `<img><|image_N|></img>`
//! placeholders.

use crate::world::{Background, Colour, Position, Scene, Shape};

/// The placeholder of the first input image.
pub const IMAGE_1: &str = "<img><|image_1|></img>";

/// `a {colour} {shape} {position}, {background} background`.
pub fn text_to_image(scene: &Scene) -> String {
    format!(
        "a {} {} {}, {} background",
        scene.colour.word(),
        scene.shape.word(),
        scene.position.phrase(),
        scene.background.word()
    )
}

/// `make the {shape} {colour}` after the input image.
pub fn recolour(shape: Shape, colour: Colour) -> String {
    format!("{IMAGE_1} make the {} {}", shape.word(), colour.word())
}

/// `change the background to {background}` after the input image.
pub fn change_background(background: Background) -> String {
    format!("{IMAGE_1} change the background to {}", background.word())
}

/// `turn the {from} into a {to}` after the input image.
pub fn reshape(from: Shape, to: Shape) -> String {
    format!("{IMAGE_1} turn the {} into a {}", from.word(), to.word())
}

/// `move the shape to the {position}` after the input image.
pub fn move_to(position: Position) -> String {
    format!("{IMAGE_1} move the shape to the {}", position.word())
}

/// `the {shape} from <img><|image_1|></img> on a {background} background`.
pub fn subject(shape: Shape, background: Background) -> String {
    format!(
        "the {} from {IMAGE_1} on a {} background",
        shape.word(),
        background.word()
    )
}

/// `fill this outline <img><|image_1|></img> with {colour}, {background} background`.
pub fn fill_outline(colour: Colour, background: Background) -> String {
    format!(
        "fill this outline {IMAGE_1} with {}, {} background",
        colour.word(),
        background.word()
    )
}

/// What a text-to-image prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Where it sits.
    pub position: Position,
    /// The background.
    pub background: Background,
}

/// Reads a prompt written by [`text_to_image`]; `None` for any other text.
pub fn parse_text_to_image(prompt: &str) -> Option<Request> {
    let (subject, background) = prompt.trim().split_once(", ")?;
    let background = Background::from_word(background.strip_suffix(" background")?)?;
    let mut words = subject.strip_prefix("a ")?.splitn(3, ' ');
    let colour = Colour::from_word(words.next()?)?;
    let shape = Shape::from_word(words.next()?)?;
    let phrase = words.next()?;
    let position = *Position::ALL.iter().find(|p| p.phrase() == phrase)?;
    Some(Request {
        shape,
        colour,
        position,
        background,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Jitter;

    fn scene(position: Position) -> Scene {
        Scene {
            shape: Shape::Circle,
            colour: Colour::Red,
            position,
            background: Background::Gray,
            jitter: Jitter::NOMINAL,
        }
    }

    #[test]
    fn prompts_read_exactly_as_the_issue_spells_them() {
        assert_eq!(
            text_to_image(&scene(Position::Left)),
            "a red circle on the left, gray background"
        );
        assert_eq!(
            text_to_image(&scene(Position::Right)),
            "a red circle on the right, gray background"
        );
        assert_eq!(
            text_to_image(&scene(Position::Top)),
            "a red circle at the top, gray background"
        );
        assert_eq!(
            text_to_image(&scene(Position::Bottom)),
            "a red circle at the bottom, gray background"
        );
        assert_eq!(
            text_to_image(&scene(Position::Center)),
            "a red circle in the center, gray background"
        );
        assert_eq!(
            recolour(Shape::Circle, Colour::Green),
            "<img><|image_1|></img> make the circle green"
        );
        assert_eq!(
            change_background(Background::Black),
            "<img><|image_1|></img> change the background to black"
        );
        assert_eq!(
            reshape(Shape::Square, Shape::Triangle),
            "<img><|image_1|></img> turn the square into a triangle"
        );
        assert_eq!(
            move_to(Position::Right),
            "<img><|image_1|></img> move the shape to the right"
        );
        assert_eq!(
            subject(Shape::Triangle, Background::Gray),
            "the triangle from <img><|image_1|></img> on a gray background"
        );
        assert_eq!(
            fill_outline(Colour::Red, Background::White),
            "fill this outline <img><|image_1|></img> with red, white background"
        );
    }

    #[test]
    fn text_to_image_prompts_parse_back() {
        for &position in Position::ALL {
            let s = scene(position);
            let r = parse_text_to_image(&text_to_image(&s)).expect("parses");
            assert_eq!(
                (r.shape, r.colour, r.position, r.background),
                (s.shape, s.colour, s.position, s.background)
            );
        }
        assert_eq!(
            parse_text_to_image("a red hexagon on the left, gray background"),
            None
        );
        assert_eq!(parse_text_to_image("a red circle on the left"), None);
        assert_eq!(parse_text_to_image("make the circle green"), None);
    }
}
