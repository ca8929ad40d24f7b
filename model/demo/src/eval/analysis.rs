//! Reading a picture: the background from its border, the shape as the largest region that differs from
//! it, the shape's colour from the region's median, its kind from how it fills its bounding box, and its
//! position from the box's centre.

use image::RgbImage;

use super::components::{regions, Region};
use crate::world::{distance2, Background, Colour, Position, Rgb, Shape};

/// A pixel belongs to the first, rough foreground when it is this far from the background colour.
const ROUGH_DISTANCE: f64 = 45.0;
/// A measured colour further than this from every palette colour is not one of them.
const MAX_PALETTE_DISTANCE: f64 = 80.0;
/// The smallest shape, as a share of the picture (the world's shapes cover 6–19%).
const MIN_AREA: f64 = 0.02;
/// The largest shape, as a share of the picture: more is a picture of something else.
const MAX_AREA: f64 = 0.4;
/// A second region at least this share of the largest makes the picture ambiguous (two shapes).
const MAX_SECOND_REGION: f64 = 0.2;
/// Widest aspect ratio (either way) a circle, square or triangle may have.
const MAX_ASPECT: f64 = 1.3;
/// Inside this distance of the centre (share of the side, on both axes) the shape is in the center.
const CENTER_RADIUS: f64 = 0.1;
/// Off-centre, one axis must dominate the other by this factor to name a side.
const AXIS_DOMINANCE: f64 = 2.0;

/// What the analysis measured, for reports and for tuning.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Measures {
    /// The median border colour.
    pub border: Rgb,
    /// The median colour of the shape.
    pub fill_colour: Rgb,
    /// The shape's area as a share of the picture.
    pub area: f64,
    /// Area over bounding-box area (circle ≈ 0.785, square ≈ 1, triangle ≈ 0.5).
    pub fill: f64,
    /// Bounding-box width over height.
    pub aspect: f64,
    /// Pixels in the upper quarter of the box's rows over those in the lower quarter (a triangle ≈ 0.15).
    pub taper: f64,
    /// The box centre's offset from the picture centre, as shares of the side (x right, y down).
    pub offset: (f64, f64),
    /// The share of shape pixels in the four corner cells (a fifth of the box's side each): a square
    /// fills its corners (≈ 1), a circle leaves them empty (≈ 0.05).
    pub corners: f64,
    /// The second region's size over the largest's.
    pub second_region: f64,
}

/// What a picture shows; `None` where the analysis cannot tell (no clear shape, a colour off the palette,
/// two shapes, a diagonal position).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    /// The background.
    pub background: Option<Background>,
    /// The shape.
    pub shape: Option<Shape>,
    /// Its colour.
    pub colour: Option<Colour>,
    /// Where it sits.
    pub position: Option<Position>,
    /// The numbers behind the decisions.
    pub measures: Measures,
}

/// Reads what `image` shows.
pub fn read(image: &RgbImage) -> Reading {
    let (w, h) = image.dimensions();
    let border = median(border_pixels(image));
    let mut reading = Reading {
        background: nearest(Background::ALL, border, |b| b.rgb()),
        shape: None,
        colour: None,
        position: None,
        measures: Measures {
            border,
            ..Measures::default()
        },
    };
    if w < 8 || h < 8 {
        return reading;
    }
    let rough: Vec<bool> = image
        .pixels()
        .map(|p| (distance2(p.0, border) as f64).sqrt() > ROUGH_DISTANCE)
        .collect();
    let Some(first) = regions(&rough, w, h).into_iter().next() else {
        return reading;
    };
    let fill_colour = median(first.pixels.iter().map(|&(x, y)| image.get_pixel(x, y).0));
    if (distance2(fill_colour, border) as f64).sqrt() <= ROUGH_DISTANCE {
        // The "shape" is as far from the background as noise: nothing stands out.
        return reading;
    }
    // The refined foreground: nearer the shape's colour than the background's (half-way along the line
    // between them), so a blurred edge counts as much inside as outside.
    let refined: Vec<bool> = image
        .pixels()
        .map(|p| along(p.0, border, fill_colour) > 0.5)
        .collect();
    let refined = majority(&refined, w as usize, h as usize);
    let found = regions(&refined, w, h);
    let Some(shape) = found.first() else {
        return reading;
    };
    let m = measure(shape, found.get(1), (w, h));
    reading.measures = Measures {
        border,
        fill_colour,
        ..m
    };
    if m.area < MIN_AREA || m.area > MAX_AREA || m.second_region >= MAX_SECOND_REGION {
        return reading;
    }
    reading.colour = nearest(Colour::ALL, fill_colour, |c| c.rgb());
    reading.shape = classify(&m);
    reading.position = locate(m.offset);
    reading
}

/// The two outermost rings of pixels.
fn border_pixels(image: &RgbImage) -> impl Iterator<Item = Rgb> + '_ {
    let (w, h) = image.dimensions();
    image
        .enumerate_pixels()
        .filter(move |(x, y, _)| *x < 2 || *y < 2 || *x + 2 >= w || *y + 2 >= h)
        .map(|(_, _, p)| p.0)
}

/// The per-channel median.
fn median(colours: impl Iterator<Item = Rgb>) -> Rgb {
    let mut ch: [Vec<u8>; 3] = Default::default();
    for c in colours {
        for i in 0..3 {
            ch[i].push(c[i]);
        }
    }
    ch.map(|mut v| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    })
}

/// The palette entry nearest `colour`, if it is near enough.
fn nearest<T: Copy>(all: &[T], colour: Rgb, rgb: impl Fn(T) -> Rgb) -> Option<T> {
    all.iter()
        .copied()
        .map(|v| (distance2(colour, rgb(v)), v))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| (*d as f64).sqrt() <= MAX_PALETTE_DISTANCE)
        .map(|(_, v)| v)
}

/// Where `p` lies on the line from `from` (0) to `to` (1).
fn along(p: Rgb, from: Rgb, to: Rgb) -> f64 {
    let d: [f64; 3] = std::array::from_fn(|i| to[i] as f64 - from[i] as f64);
    let len2: f64 = d.iter().map(|v| v * v).sum();
    if len2 == 0.0 {
        return 0.0;
    }
    (0..3)
        .map(|i| (p[i] as f64 - from[i] as f64) * d[i])
        .sum::<f64>()
        / len2
}

/// A 3×3 majority filter (outside the picture counts as background): noise of single pixels on an edge
/// neither grows the bounding box nor makes holes.
fn majority(mask: &[bool], w: usize, h: usize) -> Vec<bool> {
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let mut n = 0;
            for dy in -1..=1i64 {
                for dx in -1..=1i64 {
                    let (px, py) = (x + dx, y + dy);
                    if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                        n += mask[py as usize * w + px as usize] as u32;
                    }
                }
            }
            n >= 5
        })
        .collect()
}

/// The geometry of the largest region.
fn measure(shape: &Region, second: Option<&Region>, (w, h): (u32, u32)) -> Measures {
    let (x0, y0, x1, y1) = shape.bbox();
    let (bw, bh) = ((x1 - x0 + 1) as f64, (y1 - y0 + 1) as f64);
    let area = shape.pixels.len() as f64;
    // Pixels in the upper and the lower quarter of the box's rows (the same number of rows each).
    let rows = ((y1 - y0 + 1) / 4).max(1);
    let count = |range: std::ops::RangeInclusive<u32>| {
        shape
            .pixels
            .iter()
            .filter(|(_, y)| range.contains(y))
            .count() as f64
    };
    let (upper, lower) = (count(y0..=y0 + rows - 1), count(y1 + 1 - rows..=y1));
    let inside: std::collections::HashSet<(u32, u32)> = shape.pixels.iter().copied().collect();
    let (cw, ch) = (
        ((bw * 0.2).round() as u32).max(1),
        ((bh * 0.2).round() as u32).max(1),
    );
    let mut corner_hits = 0usize;
    for (cx, cy) in [
        (x0, y0),
        (x1 + 1 - cw, y0),
        (x0, y1 + 1 - ch),
        (x1 + 1 - cw, y1 + 1 - ch),
    ] {
        for y in cy..cy + ch {
            for x in cx..cx + cw {
                corner_hits += inside.contains(&(x, y)) as usize;
            }
        }
    }
    Measures {
        area: area / (w as f64 * h as f64),
        corners: corner_hits as f64 / (4 * cw * ch) as f64,
        fill: area / (bw * bh),
        aspect: bw / bh,
        taper: if lower > 0.0 { upper / lower } else { 0.0 },
        offset: (
            ((x0 + x1 + 1) as f64 / 2.0 - w as f64 / 2.0) / w as f64,
            ((y0 + y1 + 1) as f64 / 2.0 - h as f64 / 2.0) / h as f64,
        ),
        second_region: second.map_or(0.0, |s| s.pixels.len() as f64 / area),
        ..Measures::default()
    }
}

/// The shape a region's measures describe, if any.
fn classify(m: &Measures) -> Option<Shape> {
    if m.aspect > MAX_ASPECT || m.aspect < 1.0 / MAX_ASPECT {
        return None;
    }
    // A square and a circle are symmetric top to bottom; a triangle narrows towards its apex. A square
    // fills its corners, a circle does not.
    let symmetric = m.taper > 0.7 && m.taper < 1.0 / 0.7;
    match m.fill {
        f if f >= 0.8 && symmetric && m.corners > 0.45 => Some(Shape::Square),
        f if (0.65..0.9).contains(&f) && symmetric && m.corners < 0.4 => Some(Shape::Circle),
        f if (0.38..0.7).contains(&f) && m.taper < 0.5 => Some(Shape::Triangle),
        _ => None,
    }
}

/// The position an offset from the centre names, if any.
fn locate((dx, dy): (f64, f64)) -> Option<Position> {
    let (ax, ay) = (dx.abs(), dy.abs());
    if ax < CENTER_RADIUS && ay < CENTER_RADIUS {
        Some(Position::Center)
    } else if ax > AXIS_DOMINANCE * ay {
        Some(if dx < 0.0 {
            Position::Left
        } else {
            Position::Right
        })
    } else if ay > AXIS_DOMINANCE * ax {
        Some(if dy < 0.0 {
            Position::Top
        } else {
            Position::Bottom
        })
    } else {
        None
    }
}
