//! The pictures a VAE trains on: read from a folder or a training JSONL, held as `[-1, 1]` channel planes
//! with their per-pixel loss weights.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::error::{Error, Result};

/// Same-sized pictures and their loss weights.
#[derive(Debug, Clone)]
pub struct VaeImages {
    width: usize,
    height: usize,
    /// `[3,H,W]` in [-1, 1], one a picture.
    pixels: Vec<Vec<f32>>,
    /// `[1,H,W]`, one a picture.
    weights: Vec<Vec<f32>>,
}

impl VaeImages {
    /// The pictures (all of one size, sides multiples of 8) with weights from [`pixel_weights`].
    pub fn new(images: Vec<RgbImage>, foreground_weight: f32, edge_weight: f32) -> Result<Self> {
        let Some(first) = images.first() else {
            return Err(Error::Input("no pictures to train the VAE on".into()));
        };
        let (w, h) = first.dimensions();
        if w % 8 != 0 || h % 8 != 0 {
            return Err(Error::Input(format!(
                "VAE training pictures must have sides that are multiples of 8, got {w}x{h}"
            )));
        }
        if let Some((i, img)) = images
            .iter()
            .enumerate()
            .find(|(_, i)| i.dimensions() != (w, h))
        {
            return Err(Error::Input(format!(
                "VAE training pictures must all have one size: picture {} is {:?}, the first {w}x{h}",
                i + 1,
                img.dimensions()
            )));
        }
        let planes = |img: &RgbImage| {
            let n = (w * h) as usize;
            let mut out = vec![0f32; 3 * n];
            for (i, p) in img.pixels().enumerate() {
                for c in 0..3 {
                    out[c * n + i] = p.0[c] as f32 / 127.5 - 1.0;
                }
            }
            out
        };
        Ok(Self {
            width: w as usize,
            height: h as usize,
            pixels: images.iter().map(planes).collect(),
            weights: images
                .iter()
                .map(|i| pixel_weights(i, foreground_weight, edge_weight))
                .collect(),
        })
    }

    /// Reads the pictures of `path`: a training JSONL (every `input_images` and `output_image`, relative
    /// to the file) or a folder (every `.png`, `.jpg` and `.jpeg` below it, in name order).
    pub fn load(path: &Path, foreground_weight: f32, edge_weight: f32) -> Result<Self> {
        let files = if path.is_dir() {
            let mut files = Vec::new();
            collect_pictures(path, &mut files)?;
            files.sort();
            files
        } else {
            jsonl_pictures(path)?
        };
        let images = files
            .iter()
            .map(|f| {
                image::open(f).map(|i| i.to_rgb8()).map_err(|e| {
                    Error::Input(format!("cannot read picture `{}`: {e}", f.display()))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(images, foreground_weight, edge_weight)
    }

    /// How many pictures.
    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Picture size `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    /// Pixels `[B,3,s,s]` and weights `[B,1,s,s]` of `side`×`side` windows of the pictures: `picks` holds
    /// `(picture, x, y)`, the window's top-left corner (the window must fit). A convolutional VAE learns
    /// from windows as from whole pictures, at a fraction of the cost.
    pub fn crops(
        &self,
        picks: &[(usize, usize, usize)],
        side: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let (h, w) = (self.height, self.width);
        let mut pixels = Vec::with_capacity(picks.len() * 3 * side * side);
        let mut weights = Vec::with_capacity(picks.len() * side * side);
        for &(i, x0, y0) in picks {
            if i >= self.len() || x0 + side > w || y0 + side > h {
                return Err(Error::Input(format!(
                    "no {side}² window at ({x0}, {y0}) of picture {i} ({w}x{h}, {} pictures)",
                    self.len()
                )));
            }
            for c in 0..3 {
                for y in y0..y0 + side {
                    let row = c * h * w + y * w;
                    pixels.extend_from_slice(&self.pixels[i][row + x0..row + x0 + side]);
                }
            }
            for y in y0..y0 + side {
                weights.extend_from_slice(&self.weights[i][y * w + x0..y * w + x0 + side]);
            }
        }
        let b = picks.len();
        Ok((
            Tensor::from_vec(pixels, (b, 3, side, side), device)?,
            Tensor::from_vec(weights, (b, 1, side, side), device)?,
        ))
    }

    /// Pixels `[B,3,H,W]` and weights `[B,1,H,W]` of the pictures `indices`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let (h, w) = (self.height, self.width);
        let mut pixels = Vec::with_capacity(indices.len() * 3 * h * w);
        let mut weights = Vec::with_capacity(indices.len() * h * w);
        for &i in indices {
            let (p, wt) = self
                .pixels
                .get(i)
                .zip(self.weights.get(i))
                .ok_or_else(|| Error::Input(format!("no picture {i} of {}", self.len())))?;
            pixels.extend_from_slice(p);
            weights.extend_from_slice(wt);
        }
        let b = indices.len();
        Ok((
            Tensor::from_vec(pixels, (b, 3, h, w), device)?,
            Tensor::from_vec(weights, (b, 1, h, w), device)?,
        ))
    }
}

/// The reconstruction weight of each pixel: 1, plus `foreground_weight` where the pixel differs from the
/// picture's border colour (per-channel median of the outer ring), plus `edge_weight` within two pixels of
/// where foreground meets background. A plain loss learns the background and blurs the shape; these
/// weights make the shape and its outline count.
pub fn pixel_weights(img: &RgbImage, foreground_weight: f32, edge_weight: f32) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut ring: [Vec<u8>; 3] = Default::default();
    for (x, y, p) in img.enumerate_pixels() {
        let (x, y) = (x as usize, y as usize);
        if x == 0 || y == 0 || x + 1 == w || y + 1 == h {
            for (channel, &v) in ring.iter_mut().zip(&p.0) {
                channel.push(v);
            }
        }
    }
    let border = ring.map(|mut v| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0) as f32
    });
    let fg: Vec<bool> = img
        .pixels()
        .map(|p| {
            (0..3)
                .map(|c| (p.0[c] as f32 - border[c]).powi(2))
                .sum::<f32>()
                > 30.0 * 30.0
        })
        .collect();
    let at = |x: i64, y: i64| -> Option<bool> {
        (x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h)
            .then(|| fg[y as usize * w + x as usize])
    };
    (0..w * h)
        .map(|i| {
            let (x, y) = ((i % w) as i64, (i / w) as i64);
            let me = fg[i];
            let edge = (-2..=2i64)
                .flat_map(|dy| (-2..=2i64).map(move |dx| (dx, dy)))
                .filter(|(dx, dy)| dx.abs() + dy.abs() <= 2)
                .any(|(dx, dy)| at(x + dx, y + dy).is_some_and(|o| o != me));
            1.0 + if me { foreground_weight } else { 0.0 } + if edge { edge_weight } else { 0.0 }
        })
        .collect()
}

fn collect_pictures(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect_pictures(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Every picture a training JSONL names, relative to its folder.
fn jsonl_pictures(path: &Path) -> Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::Json {
            path: path.to_path_buf(),
            message: format!("line {}: {m}", n + 1),
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let inputs = v
            .get("input_images")
            .and_then(|i| i.as_array())
            .map(|a| a.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>())
            .unwrap_or_default();
        let output = v
            .get("output_image")
            .and_then(|o| o.as_str())
            .ok_or_else(|| bad("no `output_image`".into()))?;
        files.extend(inputs.into_iter().chain([output]).map(|p| base.join(p)));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_mark_the_shape_and_its_edge() {
        let img = RgbImage::from_fn(16, 16, |x, y| {
            image::Rgb(if (4..12).contains(&x) && (4..12).contains(&y) {
                [200, 0, 0]
            } else {
                [255; 3]
            })
        });
        let w = pixel_weights(&img, 4.0, 8.0);
        assert_eq!(w[0], 1.0); // far background
        assert_eq!(w[8 * 16 + 8], 5.0); // inside, away from the edge
        assert_eq!(w[8 * 16 + 4], 13.0); // inside, on the edge
        assert_eq!(w[8 * 16 + 3], 9.0); // outside, next to the edge
        let data = VaeImages::new(vec![img], 4.0, 8.0).unwrap();
        let (p, wt) = data.crops(&[(0, 4, 8)], 8, &Device::Cpu).unwrap();
        let (full, full_w) = data.batch(&[0], &Device::Cpu).unwrap();
        let want = full.narrow(2, 8, 8).unwrap().narrow(3, 4, 8).unwrap();
        let diff = (p - want).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        let want_w = full_w.narrow(2, 8, 8).unwrap().narrow(3, 4, 8).unwrap();
        let diff = (wt - want_w).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
        assert!(data.crops(&[(0, 10, 0)], 8, &Device::Cpu).is_err());
    }
}
