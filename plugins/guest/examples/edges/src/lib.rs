//! Example plugin `edges`: Sobel and Canny edge maps, the condition images for OmniGen's
//! visual-conditional generation ("Following the edge map of <img><|image_1|></img>, …").

use omnigen_plugin_sdk::prelude::*;

/// A grayscale plane as f32, with clamped (edge-replicating) access.
struct Plane {
    w: usize,
    h: usize,
    px: Vec<f32>,
}

impl Plane {
    fn luma(image: &Image) -> Self {
        let c = channels(image.format);
        let px = match image.format {
            PixelFormat::Gray8 => image.data.iter().map(|&v| v as f32).collect(),
            _ => image
                .data
                .chunks_exact(c)
                .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32)
                .collect(),
        };
        Plane {
            w: image.width as usize,
            h: image.height as usize,
            px,
        }
    }

    fn at(&self, x: isize, y: isize) -> f32 {
        let x = x.clamp(0, self.w as isize - 1) as usize;
        let y = y.clamp(0, self.h as isize - 1) as usize;
        self.px[y * self.w + x]
    }

    /// Separable 5-tap Gaussian blur (sigma ≈ 1), to keep noise out of the gradients.
    fn blurred(&self) -> Plane {
        const K: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
        let pass = |src: &Plane, dx: isize, dy: isize| {
            let mut px = vec![0.0; src.w * src.h];
            for y in 0..src.h as isize {
                for x in 0..src.w as isize {
                    px[y as usize * src.w + x as usize] = (-2..=2)
                        .map(|k| K[(k + 2) as usize] * src.at(x + k * dx, y + k * dy))
                        .sum();
                }
            }
            Plane {
                w: src.w,
                h: src.h,
                px,
            }
        };
        pass(&pass(self, 1, 0), 0, 1)
    }

    /// Sobel gradients (gx, gy) at every pixel.
    fn gradients(&self) -> (Vec<f32>, Vec<f32>) {
        let mut gx = vec![0.0; self.w * self.h];
        let mut gy = vec![0.0; self.w * self.h];
        for y in 0..self.h as isize {
            for x in 0..self.w as isize {
                let p = |dx, dy| self.at(x + dx, y + dy);
                let i = y as usize * self.w + x as usize;
                gx[i] =
                    (p(1, -1) + 2.0 * p(1, 0) + p(1, 1)) - (p(-1, -1) + 2.0 * p(-1, 0) + p(-1, 1));
                gy[i] =
                    (p(-1, 1) + 2.0 * p(0, 1) + p(1, 1)) - (p(-1, -1) + 2.0 * p(0, -1) + p(1, -1));
            }
        }
        (gx, gy)
    }
}

fn gray_image(w: usize, h: usize, data: Vec<u8>) -> Image {
    Image {
        width: w as u32,
        height: h as u32,
        format: PixelFormat::Gray8,
        data,
    }
}

/// Gradient magnitude (Sobel), scaled to 0–255.
pub struct Sobel;
impl Node for Sobel {
    const ID: &'static str = "sobel";
    fn spec() -> NodeSpec {
        NodeSpec::new("Sobel edges")
            .description("Gradient magnitude of the luma (Sobel 3x3), white edges on black.")
            .category("image/edges")
            .input(Port::image("image"))
            .output(Port::image("edges"))
            .float_param("scale", 1.0, 0.01, 100.0)
    }
    fn run(_ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let plane = Plane::luma(&inputs.take_image("image")?);
        let scale = params.float("scale")? as f32 / 4.0;
        let (gx, gy) = plane.gradients();
        let data = gx
            .iter()
            .zip(&gy)
            .map(|(x, y)| ((x * x + y * y).sqrt() * scale).min(255.0) as u8)
            .collect();
        Ok(Outputs::new().image("edges", gray_image(plane.w, plane.h, data)))
    }
}

/// Canny edges: blur, Sobel, non-maximum suppression, double threshold with hysteresis.
pub struct Canny;
impl Node for Canny {
    const ID: &'static str = "canny";
    fn spec() -> NodeSpec {
        NodeSpec::new("Canny edges")
            .description("Thin binary edges (Canny): white edges on black, the usual OmniGen condition image.")
            .category("image/edges")
            .input(Port::image("image"))
            .output(Port::image("edges"))
            .float_param("low_threshold", 50.0, 0.0, 1000.0)
            .float_param("high_threshold", 120.0, 0.0, 1000.0)
    }
    fn run(ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let low = params.float("low_threshold")? as f32;
        let high = params.float("high_threshold")? as f32;
        if low > high {
            return Err(NodeError::InvalidParams(format!(
                "low_threshold {low} is above high_threshold {high}"
            )));
        }
        let plane = Plane::luma(&inputs.take_image("image")?).blurred();
        ctx.checkpoint(0.3)?;
        let (w, h) = (plane.w, plane.h);
        let (gx, gy) = plane.gradients();
        // Sobel magnitudes are 4x a unit gradient; thresholds are in unit-gradient terms.
        let mag: Vec<f32> = gx
            .iter()
            .zip(&gy)
            .map(|(x, y)| (x * x + y * y).sqrt() / 4.0)
            .collect();
        ctx.checkpoint(0.6)?;
        // 0 = none, 1 = weak, 2 = strong, after thinning to local maxima along the gradient.
        let mut class = vec![0u8; w * h];
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let m = mag[i];
                if m < low {
                    continue;
                }
                let angle = gy[i].atan2(gx[i]).to_degrees().rem_euclid(180.0);
                let (dx, dy): (isize, isize) = if !(22.5..157.5).contains(&angle) {
                    (1, 0)
                } else if angle < 67.5 {
                    (1, 1)
                } else if angle < 112.5 {
                    (0, 1)
                } else {
                    (-1, 1)
                };
                let get = |xx: isize, yy: isize| {
                    if xx < 0 || yy < 0 || xx >= w as isize || yy >= h as isize {
                        0.0
                    } else {
                        mag[yy as usize * w + xx as usize]
                    }
                };
                let (xi, yi) = (x as isize, y as isize);
                if m >= get(xi + dx, yi + dy) && m >= get(xi - dx, yi - dy) {
                    class[i] = if m >= high { 2 } else { 1 };
                }
            }
        }
        // Hysteresis: keep weak pixels connected (8-neighbourhood) to a strong one.
        let mut out = vec![0u8; w * h];
        let mut stack: Vec<usize> = (0..w * h).filter(|&i| class[i] == 2).collect();
        for &i in &stack {
            out[i] = 255;
        }
        while let Some(i) = stack.pop() {
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if class[j] == 1 && out[j] == 0 {
                        out[j] = 255;
                        stack.push(j);
                    }
                }
            }
        }
        Ok(Outputs::new().image("edges", gray_image(w, h, out)))
    }
}

omnigen_plugin_sdk::plugin!(name: "edges", version: "0.1.0", nodes: [Sobel, Canny]);
