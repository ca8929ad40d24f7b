//! Pillow-exact resizing of 8-bit RGB images (`Image.resize` with `BOX` or `BICUBIC`, Pillow 10.2
//! `libImaging/Resample.c`).
//!
//! Pillow resamples in two separable passes (horizontal, then vertical), each a convolution whose
//! coefficients are normalised to sum to 1, converted to 22-bit fixed point, accumulated in `i32` with a
//! rounding bias and clipped back to `u8` between the passes. Downscaling widens the kernel by the scale
//! factor (antialiasing). Reproducing the arithmetic step by step gives bit-identical pixels.

use image::RgbImage;

/// Fractional bits of the fixed-point coefficients (`PRECISION_BITS = 32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BOX`: area average (support 0.5).
    Box,
    /// `Image.BICUBIC`: Keys cubic with `a = -0.5` (support 2).
    Bicubic,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bicubic => 2.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
        }
    }
}

/// The taps of one output pixel: first input index and fixed-point weights.
#[derive(Debug, Clone)]
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// `precompute_coeffs` + `normalize_coeffs_8bpc` for resizing `in_size` pixels to `out_size`.
fn precompute(in_size: usize, out_size: usize, filter: Filter) -> Vec<Taps> {
    // Pillow passes the box as floats; `(in1 - in0)` is a float, promoted to double.
    let scale = f64::from(in_size as f32) / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let inv = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C casts truncate toward zero.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin);
            let raw: Vec<f64> = (0..count)
                .map(|x| filter.weight(((x + xmin) as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    if w < 0.0 {
                        (-0.5 + scaled) as i32
                    } else {
                        (0.5 + scaled) as i32
                    }
                })
                .collect();
            Taps {
                first: xmin,
                weights,
            }
        })
        .collect()
}

/// Clips a fixed-point accumulator to a byte (`clip8`).
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One convolution pass over `rows` lines of `len` pixels each. `stride_in` / `stride_out` are the byte
/// distances between consecutive taps / outputs, `line_in` / `line_out` between lines.
struct Pass<'a> {
    taps: &'a [Taps],
    lines: usize,
    line_in: usize,
    line_out: usize,
    stride_in: usize,
    stride_out: usize,
}

impl Pass<'_> {
    fn run(&self, src: &[u8], dst: &mut [u8]) {
        let bias = 1i32 << (PRECISION_BITS - 1);
        for line in 0..self.lines {
            for (o, taps) in self.taps.iter().enumerate() {
                let mut acc = [bias; 3];
                for (t, &w) in taps.weights.iter().enumerate() {
                    let base = line * self.line_in + (taps.first + t) * self.stride_in;
                    for (c, a) in acc.iter_mut().enumerate() {
                        *a += i32::from(src[base + c]) * w;
                    }
                }
                let out = line * self.line_out + o * self.stride_out;
                for (c, a) in acc.iter().enumerate() {
                    dst[out + c] = clip8(*a);
                }
            }
        }
    }
}

/// Resizes `img` to `width` x `height` exactly as Pillow's `img.resize((width, height), filter)` does for an
/// RGB image. Both target sides must be at least 1 (callers validate; a 0 side returns an empty image).
pub fn resize(img: &RgbImage, width: u32, height: u32, filter: Filter) -> RgbImage {
    let (in_w, in_h) = (img.width() as usize, img.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    if (in_w, in_h) == (out_w, out_h) || out_w == 0 || out_h == 0 || in_w == 0 || in_h == 0 {
        // Pillow returns a copy when the size does not change.
        return if (in_w, in_h) == (out_w, out_h) {
            img.clone()
        } else {
            RgbImage::new(width, height)
        };
    }
    let vert = precompute(in_h, out_h, filter);
    // Only the input rows the vertical pass reads are resampled horizontally (as in Pillow).
    let row_first = vert[0].first;
    let row_last = vert.last().map_or(in_h, |t| t.first + t.weights.len());

    let mut current: Vec<u8>;
    let mut cur_w = in_w;
    let src = img.as_raw();
    let vert_taps: Vec<Taps>;
    if out_w != in_w {
        let horiz = precompute(in_w, out_w, filter);
        let rows = row_last - row_first;
        current = vec![0u8; rows * out_w * 3];
        Pass {
            taps: &horiz,
            lines: rows,
            line_in: in_w * 3,
            line_out: out_w * 3,
            stride_in: 3,
            stride_out: 3,
        }
        .run(&src[row_first * in_w * 3..], &mut current);
        cur_w = out_w;
        vert_taps = vert
            .into_iter()
            .map(|t| Taps {
                first: t.first - row_first,
                weights: t.weights,
            })
            .collect();
    } else {
        current = src.clone();
        vert_taps = vert;
    }
    if out_h != in_h {
        let mut out = vec![0u8; out_h * cur_w * 3];
        // Vertical pass: "lines" are columns; taps step over rows.
        Pass {
            taps: &vert_taps,
            lines: cur_w,
            line_in: 3,
            line_out: 3,
            stride_in: cur_w * 3,
            stride_out: cur_w * 3,
        }
        .run(&current, &mut out);
        current = out;
    }
    RgbImage::from_raw(width, height, current).unwrap_or_else(|| RgbImage::new(width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_halving_averages_pairs_with_rounding() {
        // 4x1 -> 2x1: (10+21)/2 = 15.5 -> 16 (round half up in fixed point), (200+255)/2 = 227.5 -> 228.
        let img = RgbImage::from_raw(4, 1, vec![10, 0, 0, 21, 0, 0, 200, 9, 1, 255, 9, 2]).unwrap();
        let out = resize(&img, 2, 1, Filter::Box);
        assert_eq!(out.as_raw(), &vec![16, 0, 0, 228, 9, 2]);
    }

    #[test]
    fn bicubic_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(45, 17), (17, 45), (230, 100), (7, 7)] {
            for taps in precompute(i, o, Filter::Bicubic) {
                let sum: i32 = taps.weights.iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= taps.weights.len() as i32,
                    "{i}->{o}: {sum}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = RgbImage::from_pixel(13, 9, image::Rgb([7, 128, 250]));
        for f in [Filter::Box, Filter::Bicubic] {
            let out = resize(&img, 29, 4, f);
            assert!(out.pixels().all(|p| p.0 == [7, 128, 250]), "{f:?}");
        }
    }
}
