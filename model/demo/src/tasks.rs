//! The four tasks in OmniGen's one unified format (an instruction, its input images, the output image),
//! drawn from the world for a split.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::prompt;
use crate::render::{render, render_outline};
use crate::rng::Rng;
use crate::world::{Background, Colour, Combos, Jitter, Position, Scene, Shape};

/// A task of the demo set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// `a red circle on the left, gray background`.
    T2i,
    /// An instruction edit of an input picture (colour, background, shape or position).
    Edit,
    /// `the triangle from <img><|image_1|></img> on a gray background`: the input's shape, in its colour and
    /// size, in the center of a new background.
    Subject,
    /// `fill this outline <img><|image_1|></img> with red, white background`: the outline's shape, place and
    /// size, filled.
    Outline,
}

impl Task {
    /// Every task, in a fixed order.
    pub const ALL: [Task; 4] = [Task::T2i, Task::Edit, Task::Subject, Task::Outline];

    /// The task's name on the command line and in the scene records.
    pub fn name(self) -> &'static str {
        match self {
            Task::T2i => "t2i",
            Task::Edit => "edit",
            Task::Subject => "subject",
            Task::Outline => "outline",
        }
    }

    /// The task a name names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Which part of the world a sample's scenes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// No held-out combination anywhere (inputs or output).
    Train,
    /// The output is a held-out combination (the inputs may be anything).
    Heldout,
}

impl Split {
    /// The split's name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Heldout => "heldout",
        }
    }

    /// The split a name names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Split::Train, Split::Heldout]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn target_combos(self) -> Combos {
        match self {
            Split::Train => Combos::Seen,
            Split::Heldout => Combos::HeldOut,
        }
    }

    fn input_combos(self) -> Combos {
        match self {
            Split::Train => Combos::Seen,
            Split::Heldout => Combos::Any,
        }
    }

    /// A salt that keeps the two splits' streams apart for one seed.
    fn salt(self) -> u64 {
        match self {
            Split::Train => 0,
            Split::Heldout => 0x05EE_D0F4_E1D0_u64,
        }
    }
}

/// What an edit changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditKind {
    /// `make the circle green`.
    Colour,
    /// `change the background to black`.
    Background,
    /// `turn the square into a triangle`.
    Shape,
    /// `move the shape to the right`.
    Move,
}

/// An input picture of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    /// The scene rendered.
    Scene(Scene),
    /// The outline of the scene's shape, black on white.
    Outline(Scene),
}

impl Input {
    /// Renders the input picture.
    pub fn render(&self, size: u32) -> RgbImage {
        match self {
            Input::Scene(s) => render(s, size),
            Input::Outline(s) => render_outline(s, size),
        }
    }

    /// The scene behind the input.
    pub fn scene(&self) -> &Scene {
        match self {
            Input::Scene(s) | Input::Outline(s) => s,
        }
    }
}

/// One training example: instruction, inputs and the scene the output shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The task.
    pub task: Task,
    /// For edits, what changes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub edit: Option<EditKind>,
    /// The instruction, with one placeholder per input.
    pub instruction: String,
    /// The input pictures (`<|image_1|>` first).
    pub inputs: Vec<Input>,
    /// The output picture's scene: what a correct answer shows.
    pub target: Scene,
}

impl Sample {
    /// Sample `index` of the family `seed` for `split`: the same sample whatever the count or task list
    /// around it.
    pub fn generate(seed: u64, index: u64, task: Task, split: Split) -> Self {
        let mut rng = Rng::for_item(seed ^ split.salt(), index);
        Self::draw(&mut rng, task, split)
    }

    /// A sample of `task` for `split`.
    pub fn draw(rng: &mut Rng, task: Task, split: Split) -> Self {
        let target = Scene::draw(rng, split.target_combos());
        match task {
            Task::T2i => Self {
                task,
                edit: None,
                instruction: prompt::text_to_image(&target),
                inputs: Vec::new(),
                target,
            },
            Task::Edit => edit(rng, target, split),
            Task::Subject => {
                // The subject sits anywhere but the center, on another background; the answer centres it.
                let mut target = target;
                target.position = Position::Center;
                target.jitter.dx = 0.0;
                target.jitter.dy = 0.0;
                let mut source = target;
                source.position = rng.pick(&Position::ALL[..4]);
                source.background = other(rng, Background::ALL, target.background);
                source.jitter = Jitter {
                    size: target.jitter.size,
                    ..Jitter::draw(rng)
                };
                Self {
                    task,
                    edit: None,
                    instruction: prompt::subject(target.shape, target.background),
                    inputs: vec![Input::Scene(source)],
                    target,
                }
            }
            Task::Outline => Self {
                task,
                edit: None,
                instruction: prompt::fill_outline(target.colour, target.background),
                inputs: vec![Input::Outline(target)],
                target,
            },
        }
    }

    /// Renders the input pictures and the output picture.
    pub fn render(&self, size: u32) -> (Vec<RgbImage>, RgbImage) {
        (
            self.inputs.iter().map(|i| i.render(size)).collect(),
            render(&self.target, size),
        )
    }

    /// Every scene the sample shows (inputs and output).
    pub fn scenes(&self) -> impl Iterator<Item = &Scene> {
        self.inputs
            .iter()
            .map(Input::scene)
            .chain(std::iter::once(&self.target))
    }
}

/// An edit whose result is `target`: the input differs from it in exactly one attribute.
fn edit(rng: &mut Rng, target: Scene, split: Split) -> Sample {
    let allowed = |s: &Scene| split.input_combos() != Combos::Seen || !s.is_held_out();
    let kind = rng.pick(&[
        EditKind::Colour,
        EditKind::Background,
        EditKind::Shape,
        EditKind::Move,
    ]);
    let mut source = target;
    let instruction = match kind {
        EditKind::Colour => {
            let choices: Vec<Colour> = Colour::ALL
                .iter()
                .copied()
                .filter(|&c| {
                    c != target.colour
                        && allowed(&Scene {
                            colour: c,
                            ..target
                        })
                })
                .collect();
            source.colour = rng.pick(&choices);
            prompt::recolour(target.shape, target.colour)
        }
        EditKind::Background => {
            source.background = other(rng, Background::ALL, target.background);
            prompt::change_background(target.background)
        }
        EditKind::Shape => {
            let choices: Vec<Shape> = Shape::ALL
                .iter()
                .copied()
                .filter(|&s| s != target.shape && allowed(&Scene { shape: s, ..target }))
                .collect();
            source.shape = rng.pick(&choices);
            prompt::reshape(source.shape, target.shape)
        }
        EditKind::Move => {
            source.position = other(rng, Position::ALL, target.position);
            prompt::move_to(target.position)
        }
    };
    Sample {
        task: Task::Edit,
        edit: Some(kind),
        instruction,
        inputs: vec![Input::Scene(source)],
        target,
    }
}

/// A value of `all` other than `not`.
fn other<T: Copy + PartialEq>(rng: &mut Rng, all: &[T], not: T) -> T {
    let rest: Vec<T> = all.iter().copied().filter(|&v| v != not).collect();
    rng.pick(&rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_held_out_set_never_appears_in_a_training_sample() {
        for task in Task::ALL {
            for i in 0..400 {
                let s = Sample::generate(11, i, task, Split::Train);
                assert!(s.scenes().all(|sc| !sc.is_held_out()), "{s:?}");
                let h = Sample::generate(11, i, task, Split::Heldout);
                assert!(h.target.is_held_out(), "{h:?}");
            }
        }
    }

    #[test]
    fn edits_change_exactly_what_they_name() {
        for i in 0..200 {
            let s = Sample::generate(5, i, Task::Edit, Split::Train);
            let src = *s.inputs[0].scene();
            let t = s.target;
            let changed = [
                src.shape != t.shape,
                src.colour != t.colour,
                src.background != t.background,
                src.position != t.position,
            ];
            assert_eq!(changed.iter().filter(|&&c| c).count(), 1, "{s:?}");
            assert_eq!(src.jitter, t.jitter);
            let want = match s.edit.expect("an edit kind") {
                EditKind::Colour => changed[1],
                EditKind::Shape => changed[0],
                EditKind::Background => changed[2],
                EditKind::Move => changed[3],
            };
            assert!(want, "{s:?}");
            assert!(s.instruction.starts_with(prompt::IMAGE_1));
        }
    }

    #[test]
    fn samples_are_independent_of_their_neighbours() {
        let a = Sample::generate(9, 17, Task::Subject, Split::Train);
        let b = Sample::generate(9, 17, Task::Subject, Split::Train);
        assert_eq!(a, b);
        assert_ne!(a, Sample::generate(9, 18, Task::Subject, Split::Train));
        assert_ne!(a, Sample::generate(9, 17, Task::Subject, Split::Heldout));
    }
}
