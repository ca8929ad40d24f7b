//! The loss log (`loss.csv`: one row per optimizer step) and its curve (`loss.png`), drawn with the `image`
//! crate: a frame with tick marks, the per-step loss in light blue and its running mean in dark blue.

use std::io::Write;
use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};

/// The CSV header of `loss.csv`.
pub const LOSS_HEADER: &str = "step,epoch,loss,grad_norm,lr,elapsed_s";

/// One row of the loss log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossRow {
    /// Optimizer step (1-based).
    pub step: usize,
    /// Epoch (0-based) of the step's last micro-batch.
    pub epoch: usize,
    /// Mean loss of the step's micro-batches.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Seconds of training so far (this run plus the runs resumed from).
    pub elapsed_s: f64,
}

impl LossRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{:.8e},{:.8e},{:e},{:.3}",
            self.step, self.epoch, self.loss, self.grad_norm, self.lr, self.elapsed_s
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 6 {
            return None;
        }
        Some(Self {
            step: f[0].parse().ok()?,
            epoch: f[1].parse().ok()?,
            loss: f[2].parse().ok()?,
            grad_norm: f[3].parse().ok()?,
            lr: f[4].parse().ok()?,
            elapsed_s: f[5].parse().ok()?,
        })
    }
}

/// Reads a `loss.csv` (rows it cannot parse are an error naming the line).
pub fn read_loss_csv(path: &Path) -> Result<Vec<LossRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            LossRow::parse(l).ok_or_else(|| {
                Error::Input(format!("{}:{}: not a loss row: {l}", path.display(), i + 1))
            })
        })
        .collect()
}

/// Writes `rows` as a complete `loss.csv` (temporary file, then rename).
pub fn write_loss_csv(path: &Path, rows: &[LossRow]) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let mut text = String::from(LOSS_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&r.csv());
        text.push('\n');
    }
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Appends one row to an existing `loss.csv`.
pub fn append_loss_row(path: &Path, row: &LossRow) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(f, "{}", row.csv()).map_err(|e| Error::io(path, e))
}

const W: u32 = 640;
const H: u32 = 400;
const MARGIN: u32 = 40;

/// Draws the loss curve of `rows` into a PNG at `path` (x: step, y: loss from 0 to the maximum).
pub fn plot_loss(path: &Path, rows: &[LossRow]) -> Result<()> {
    let img = render(rows);
    img.save(path)
        .map_err(|e| Error::Input(format!("cannot write `{}`: {e}", path.display())))
}

fn render(rows: &[LossRow]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    let black = Rgb([0, 0, 0]);
    let (x0, y0, x1, y1) = (MARGIN, H - MARGIN, W - MARGIN / 2, MARGIN / 2);
    line(&mut img, (x0, y0), (x1, y0), black);
    line(&mut img, (x0, y0), (x0, y1), black);
    for k in 0..=10 {
        let x = x0 + (x1 - x0) * k / 10;
        line(&mut img, (x, y0), (x, y0 + 5), black);
        let y = y0 - (y0 - y1) * k / 10;
        line(&mut img, (x0 - 5, y), (x0, y), black);
    }
    let finite: Vec<&LossRow> = rows.iter().filter(|r| r.loss.is_finite()).collect();
    if finite.is_empty() {
        return img;
    }
    let max_loss = finite
        .iter()
        .map(|r| r.loss)
        .fold(f64::MIN, f64::max)
        .max(1e-12);
    let (first, last) = (finite[0].step as f64, finite[finite.len() - 1].step as f64);
    let span = (last - first).max(1.0);
    let at = |step: usize, loss: f64| {
        let x = x0 as f64 + (x1 - x0) as f64 * (step as f64 - first) / span;
        let y = y0 as f64 - (y0 - y1) as f64 * (loss / max_loss).clamp(0.0, 1.0);
        (x.round() as u32, y.round() as u32)
    };
    let window = (finite.len() / 20).max(1);
    let mut mean = Vec::with_capacity(finite.len());
    for i in 0..finite.len() {
        let lo = i.saturating_sub(window - 1);
        let s: f64 = finite[lo..=i].iter().map(|r| r.loss).sum();
        mean.push(s / (i - lo + 1) as f64);
    }
    for (series, colour) in [
        (
            finite.iter().map(|r| r.loss).collect::<Vec<_>>(),
            Rgb([150, 190, 240]),
        ),
        (mean, Rgb([20, 60, 170])),
    ] {
        let pts: Vec<(u32, u32)> = finite
            .iter()
            .zip(&series)
            .map(|(r, &l)| at(r.step, l))
            .collect();
        if pts.len() == 1 {
            line(&mut img, pts[0], pts[0], colour);
        }
        for w in pts.windows(2) {
            line(&mut img, w[0], w[1], colour);
        }
    }
    img
}

/// Bresenham line, clipped to the image.
fn line(img: &mut RgbImage, a: (u32, u32), b: (u32, u32), c: Rgb<u8>) {
    let (mut x, mut y) = (a.0 as i64, a.1 as i64);
    let (bx, by) = (b.0 as i64, b.1 as i64);
    let (dx, dy) = ((bx - x).abs(), -(by - y).abs());
    let (sx, sy) = (if x < bx { 1 } else { -1 }, if y < by { 1 } else { -1 });
    let mut err = dx + dy;
    loop {
        if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, c);
        }
        if x == bx && y == by {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trips_and_the_plot_has_axes_and_a_curve() {
        let rows: Vec<LossRow> = (1..=30)
            .map(|s| LossRow {
                step: s,
                epoch: s / 10,
                loss: 1.0 / s as f64,
                grad_norm: 0.5,
                lr: 1e-4,
                elapsed_s: s as f64 * 0.1,
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("loss.csv");
        write_loss_csv(&p, &rows[..29]).unwrap();
        append_loss_row(&p, &rows[29]).unwrap();
        let back = read_loss_csv(&p).unwrap();
        assert_eq!(back.len(), 30);
        assert_eq!(back[29].step, 30);
        assert!((back[4].loss - 0.2).abs() < 1e-12);
        let img = render(&rows);
        assert_eq!(
            img.get_pixel(MARGIN, H - MARGIN - 100),
            &Rgb([0, 0, 0]),
            "y axis"
        );
        // The first point (largest loss) is at the top left; the curve is drawn in blue.
        let blue = img
            .pixels()
            .filter(|p| p.0[2] > 150 && p.0[0] < 160)
            .count();
        assert!(blue > 200, "curve pixels: {blue}");
        assert_ne!(img.get_pixel(MARGIN, MARGIN / 2), &Rgb([255, 255, 255]));
    }
}
