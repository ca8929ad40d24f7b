//! Drawing a scene: one anti-aliased shape (4×4 samples a pixel) on a plain background, or the shape's
//! outline in black on white (the visual-conditional task's input). Only exact float arithmetic (+, −, ×,
//! ÷), so the pixels are the same on every platform.

use image::RgbImage;

use crate::world::{Rgb, Scene, Shape};

/// Samples per pixel along each axis.
const SUPERSAMPLE: u32 = 4;
/// The outline's width, as a fraction of the image side.
const OUTLINE_WIDTH: f64 = 0.05;
/// An isosceles triangle of base and height `s` has its inscribed circle's radius `s/(1+√5)`.
const TRIANGLE_INRADIUS: f64 = 0.309_016_994_374_947_45;

/// The pixel colour of an outline.
pub const OUTLINE_INK: Rgb = [0, 0, 0];
/// The background of an outline image.
pub const OUTLINE_PAPER: Rgb = [255, 255, 255];

/// The geometry of a scene's shape in pixels.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    shape: Shape,
    /// Centre of the bounding box.
    cx: f64,
    cy: f64,
    /// Side of the bounding box.
    side: f64,
}

impl Geometry {
    fn of(scene: &Scene, size: u32) -> Self {
        let n = size as f64;
        let (ax, ay) = scene.position.anchor();
        Self {
            shape: scene.shape,
            cx: (ax + scene.jitter.dx) * n,
            cy: (ay + scene.jitter.dy) * n,
            side: scene.jitter.size * n,
        }
    }

    /// Whether the point `(x, y)` is inside the shape.
    fn contains(&self, x: f64, y: f64) -> bool {
        let h = self.side / 2.0;
        let (dx, dy) = (x - self.cx, y - self.cy);
        match self.shape {
            Shape::Circle => dx * dx + dy * dy <= h * h,
            Shape::Square => dx.abs() <= h && dy.abs() <= h,
            // Apex at the top centre, base along the bottom edge of the bounding box.
            Shape::Triangle => {
                let down = dy + h;
                (0.0..=self.side).contains(&down) && dx.abs() <= down / 2.0
            }
        }
    }

    /// The centre and radius of the inscribed circle: scaling about it offsets every edge equally.
    fn incircle(&self) -> (f64, f64, f64) {
        match self.shape {
            Shape::Circle | Shape::Square => (self.cx, self.cy, self.side / 2.0),
            Shape::Triangle => {
                let r = TRIANGLE_INRADIUS * self.side;
                (self.cx, self.cy + self.side / 2.0 - r, r)
            }
        }
    }

    /// Whether `(x, y)` lies in a band of width `w` around the shape's boundary.
    fn on_outline(&self, x: f64, y: f64, w: f64) -> bool {
        let (ox, oy, r) = self.incircle();
        let inside_scaled = |f: f64| self.contains(ox + (x - ox) / f, oy + (y - oy) / f);
        inside_scaled(1.0 + w / 2.0 / r) && !inside_scaled(1.0 - w / 2.0 / r)
    }
}

/// Renders `scene` as a `size`×`size` picture.
pub fn render(scene: &Scene, size: u32) -> RgbImage {
    let g = Geometry::of(scene, size);
    paint(size, scene.background.rgb(), scene.colour.rgb(), |x, y| {
        g.contains(x, y)
    })
}

/// Renders the outline of `scene`'s shape (same place and size) in black on white.
pub fn render_outline(scene: &Scene, size: u32) -> RgbImage {
    let g = Geometry::of(scene, size);
    let w = OUTLINE_WIDTH * size as f64;
    paint(size, OUTLINE_PAPER, OUTLINE_INK, |x, y| {
        g.on_outline(x, y, w)
    })
}

/// Blends `ink` over `paper` by the share of each pixel's samples that `covered` accepts.
fn paint(size: u32, paper: Rgb, ink: Rgb, covered: impl Fn(f64, f64) -> bool) -> RgbImage {
    let total = SUPERSAMPLE * SUPERSAMPLE;
    RgbImage::from_fn(size, size, |px, py| {
        let mut hits = 0u32;
        for sy in 0..SUPERSAMPLE {
            for sx in 0..SUPERSAMPLE {
                let x = px as f64 + (sx as f64 + 0.5) / SUPERSAMPLE as f64;
                let y = py as f64 + (sy as f64 + 0.5) / SUPERSAMPLE as f64;
                hits += covered(x, y) as u32;
            }
        }
        let mix = |c: usize| {
            ((paper[c] as u32 * (total - hits) + ink[c] as u32 * hits + total / 2) / total) as u8
        };
        image::Rgb([mix(0), mix(1), mix(2)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{Background, Colour, Jitter, Position};

    fn scene(shape: Shape) -> Scene {
        Scene {
            shape,
            colour: Colour::Red,
            position: Position::Center,
            background: Background::White,
            jitter: Jitter::NOMINAL,
        }
    }

    fn coverage(img: &RgbImage, bg: Rgb) -> f64 {
        img.pixels().filter(|p| p.0 != bg).count() as f64 / (img.width() * img.height()) as f64
    }

    #[test]
    fn shapes_cover_their_expected_areas() {
        // 40% of the side: the bounding box is 16% of the picture.
        let bbox = 0.16;
        let circle = coverage(&render(&scene(Shape::Circle), 128), [255; 3]) / bbox;
        let square = coverage(&render(&scene(Shape::Square), 128), [255; 3]) / bbox;
        let triangle = coverage(&render(&scene(Shape::Triangle), 128), [255; 3]) / bbox;
        assert!((circle - 0.785).abs() < 0.05, "{circle}");
        assert!((square - 1.0).abs() < 0.06, "{square}");
        assert!((triangle - 0.5).abs() < 0.06, "{triangle}");
    }

    #[test]
    fn an_outline_is_a_thin_band() {
        let img = render_outline(&scene(Shape::Square), 64);
        let inked = coverage(&img, OUTLINE_PAPER);
        // Perimeter 4·25.6 px times a width of 3.2 px over 64² (8%), plus the anti-aliased fringe.
        assert!(inked > 0.06 && inked < 0.12, "{inked}");
        // The centre is paper, the edge midpoint ink.
        assert_eq!(img.get_pixel(32, 32).0, OUTLINE_PAPER);
        assert_eq!(img.get_pixel(32, 32 - 13).0, OUTLINE_INK);
    }
}
