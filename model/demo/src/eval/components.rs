//! Connected regions of a boolean mask (4-neighbourhood).

/// One connected region: its pixels as `(x, y)`.
#[derive(Debug, Clone)]
pub(crate) struct Region {
    pub pixels: Vec<(u32, u32)>,
}

impl Region {
    /// The bounding box `(x0, y0, x1, y1)`, inclusive.
    pub fn bbox(&self) -> (u32, u32, u32, u32) {
        let mut b = (u32::MAX, u32::MAX, 0, 0);
        for &(x, y) in &self.pixels {
            b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        b
    }
}

/// The regions of `mask` (`width`×`height`, row-major), largest first.
pub(crate) fn regions(mask: &[bool], width: u32, height: u32) -> Vec<Region> {
    let (w, h) = (width as usize, height as usize);
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let mut pixels = Vec::new();
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            pixels.push((x as u32, y as u32));
            let mut visit = |j: usize| {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < w {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - w);
            }
            if y + 1 < h {
                visit(i + w);
            }
        }
        out.push(Region { pixels });
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.pixels.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separate_regions_largest_first() {
        #[rustfmt::skip]
        let m = [
            1, 1, 0, 0,
            1, 0, 0, 1,
            0, 0, 0, 1,
            0, 1, 0, 1,
        ].map(|v| v == 1);
        let r = regions(&m, 4, 4);
        assert_eq!(
            r.iter().map(|r| r.pixels.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(r[2].bbox(), (1, 3, 1, 3));
    }
}
