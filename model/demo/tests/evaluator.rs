//! The evaluator decides right: every ground-truth render is read correctly, also under the noise and
//! blur a small VAE adds, and deliberately wrong pictures are read as wrong (or uncertain).

use image::RgbImage;
use omnigen_demo::eval::{evaluate, judge, read, Expectation};
use omnigen_demo::{
    prompt, render, Background, Colour, Jitter, Position, Rng, Sample, Scene, Shape, Split, Task,
};

/// Targets of every task, both splits, `per` seeds each.
fn targets(per: u64) -> Vec<Scene> {
    let mut out = Vec::new();
    for split in [Split::Train, Split::Heldout] {
        for task in Task::ALL {
            for i in 0..per {
                out.push(Sample::generate(100, i, task, split).target);
            }
        }
    }
    out
}

/// Adds gaussian noise of `sigma` (0–255 scale).
fn noisy(img: &RgbImage, sigma: f64, seed: u64) -> RgbImage {
    let mut rng = Rng::new(seed);
    let mut out = img.clone();
    for p in out.pixels_mut() {
        for c in p.0.iter_mut() {
            let (u1, u2) = (1.0 - rng.unit(), rng.unit());
            let n = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            *c = (*c as f64 + sigma * n).round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

/// A 3×3 box blur (edges clamped).
fn blurred(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(w, h, |x, y| {
        let mut sum = [0u32; 3];
        for dy in -1i32..=1 {
            for dx in -1i32..=1 {
                let px = (x as i32 + dx).clamp(0, w as i32 - 1) as u32;
                let py = (y as i32 + dy).clamp(0, h as i32 - 1) as u32;
                let p = img.get_pixel(px, py).0;
                for c in 0..3 {
                    sum[c] += p[c] as u32;
                }
            }
        }
        image::Rgb(sum.map(|s| ((s + 4) / 9) as u8))
    })
}

fn scene(shape: Shape, colour: Colour, position: Position, background: Background) -> Scene {
    Scene {
        shape,
        colour,
        position,
        background,
        jitter: Jitter::NOMINAL,
    }
}

#[test]
fn every_ground_truth_render_is_read_correctly() {
    let all = targets(40);
    assert_eq!(all.len(), 320);
    for s in &all {
        let img = render(s, 64);
        let v = judge(&Expectation::scene(s), &img);
        assert!(v.fully_correct(), "{s:?}: {v} {:?}", v.reading.measures);
    }
    // Text-to-image prompts through `evaluate`, and the other sizes the data set may use.
    for i in 0..300 {
        let s = Sample::generate(7, i, Task::T2i, Split::Train);
        for size in [64, 128] {
            let v = evaluate(&s.instruction, &render(&s.target, size)).expect("a t2i prompt");
            assert!(v.fully_correct(), "{}: {v}", s.instruction);
        }
    }
}

#[test]
fn noise_and_blur_like_a_small_vae_do_not_change_the_reading() {
    for (i, s) in targets(40).iter().enumerate() {
        let img = noisy(&blurred(&blurred(&render(s, 64))), 12.0, i as u64);
        let v = judge(&Expectation::scene(s), &img);
        assert!(v.fully_correct(), "{s:?}: {v} {:?}", v.reading.measures);
    }
}

#[test]
fn a_wrong_attribute_is_found_wrong_and_only_it() {
    let s = scene(Shape::Circle, Colour::Red, Position::Left, Background::Gray);
    let img = render(&s, 64);
    let right = prompt::text_to_image(&s);
    assert!(evaluate(&right, &img).unwrap().fully_correct());
    let cases = [
        ("a blue circle on the left, gray background", "colour"),
        ("a red square on the left, gray background", "shape"),
        ("a red triangle on the left, gray background", "shape"),
        ("a red circle on the right, gray background", "position"),
        ("a red circle in the center, gray background", "position"),
        ("a red circle on the left, white background", "background"),
    ];
    for (p, wrong) in cases {
        let v = evaluate(p, &img).unwrap();
        assert!(!v.fully_correct(), "{p}");
        let flags = [
            ("shape", v.shape),
            ("colour", v.colour),
            ("position", v.position),
            ("background", v.background),
        ];
        for (name, ok) in flags {
            assert_eq!(ok, Some(name != wrong), "{p}: {name}");
        }
    }
    // Each shape is told from the other two, on every background.
    for &b in Background::ALL {
        for &shape in Shape::ALL {
            let r = read(&render(
                &scene(shape, Colour::Purple, Position::Center, b),
                64,
            ));
            assert_eq!(r.shape, Some(shape), "{shape:?} on {b:?}: {:?}", r.measures);
        }
    }
}

/// A picture of `bg` with the pixels `inside` accepts painted `ink`.
fn drawn(bg: [u8; 3], ink: [u8; 3], inside: impl Fn(u32, u32) -> bool) -> RgbImage {
    RgbImage::from_fn(64, 64, |x, y| {
        image::Rgb(if inside(x, y) { ink } else { bg })
    })
}

#[test]
fn pictures_without_one_clear_shape_are_uncertain() {
    let gray = Background::Gray.rgb();
    let red = Colour::Red.rgb();
    // Nothing drawn: the background is known, the shape is not.
    let blank = read(&drawn(gray, red, |_, _| false));
    assert_eq!(blank.background, Some(Background::Gray));
    assert_eq!(
        (blank.shape, blank.colour, blank.position),
        (None, None, None)
    );
    // A speck is no shape.
    let speck = read(&drawn(gray, red, |x, y| {
        (30..33).contains(&x) && (30..33).contains(&y)
    }));
    assert_eq!(speck.shape, None);
    // Two shapes of the same size.
    let two = read(&drawn(gray, red, |x, y| {
        (20..44).contains(&y) && ((4..24).contains(&x) || (40..60).contains(&x))
    }));
    assert_eq!(two.shape, None);
    // A bar 2:1 is neither a square nor a circle.
    let bar = read(&drawn(gray, red, |x, y| {
        (12..52).contains(&x) && (22..42).contains(&y)
    }));
    assert_eq!(bar.shape, None, "{:?}", bar.measures);
    // An upside-down triangle is not the world's triangle.
    let flipped = read(&drawn(gray, red, |x, y| {
        (19..45).contains(&y) && (x as i32 - 32).abs() * 2 <= 45 - y as i32
    }));
    assert_eq!(flipped.shape, None, "{:?}", flipped.measures);
    // A diagonal corner is no position of the world.
    let corner = read(&drawn(gray, red, |x, y| {
        (4..24).contains(&x) && (4..24).contains(&y)
    }));
    assert_eq!(corner.shape, Some(Shape::Square));
    assert_eq!(corner.position, None);
    // Orange is no colour of the palette, pink no background.
    let orange = read(&drawn(gray, [255, 128, 0], |x, y| {
        (20..44).contains(&x) && (20..44).contains(&y)
    }));
    assert_eq!((orange.shape, orange.colour), (Some(Shape::Square), None));
    let pink = read(&drawn([255, 150, 200], red, |_, _| false));
    assert_eq!(pink.background, None);
    // Full noise: no decision that could be right by chance.
    let mut rng = Rng::new(1);
    let static_noise = RgbImage::from_fn(64, 64, |_, _| {
        image::Rgb([
            rng.below(256) as u8,
            rng.below(256) as u8,
            rng.below(256) as u8,
        ])
    });
    let n = read(&static_noise);
    assert_eq!(n.shape, None, "{:?}", n.measures);
}

#[test]
fn a_prompt_outside_the_world_is_an_error() {
    let img = render(
        &scene(Shape::Circle, Colour::Red, Position::Left, Background::Gray),
        64,
    );
    let e = evaluate("a photo of a cat", &img).unwrap_err();
    assert!(e.to_string().contains("a photo of a cat"));
}
