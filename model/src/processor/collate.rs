//! Collation of tokenized rows into model inputs (`OmniGenCollator`, spec §6.7): left padding with id 2,
//! 1-D position ids, and the 0/1 attention mask (causal text, bidirectional condition images, output-image
//! tokens that see everything).

use candle_core::{Device, Tensor};

use super::error::ProcessorResult;
use crate::span::ImageSpan;

/// The id used for left padding (`</s>`, `OmniGenCollator.pad_token_id`).
pub const PAD_TOKEN_ID: u32 = 2;

/// One tokenized row before padding: ids (image spans hold 0s) and its unshifted image spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    /// Token ids, image placeholders already expanded to `(H/16)*(W/16)` zeros.
    pub ids: Vec<u32>,
    /// `[start, end)` of each condition image in `ids`, in text order.
    pub spans: Vec<(usize, usize)>,
}

/// Collated inputs of one batch (one CFG branch in separate mode, all branches in batched mode).
#[derive(Debug, Clone)]
pub struct Collated {
    /// `[rows, T]` i64 ids, left-padded with [`PAD_TOKEN_ID`].
    pub input_ids: Tensor,
    /// `[rows, S, S]` f32 0/1 mask, `S = T + 1 + num_output_tokens`, 1 = may attend.
    pub attention_mask: Tensor,
    /// `[rows, S]` i64 positions: `0` over the padding, then `0, 1, …` over text, time token, output image.
    pub position_ids: Tensor,
    /// Condition-image spans shifted by the left padding, row by row, in text order. Condition latents must be
    /// given to the transformer in this order.
    pub image_spans: Vec<ImageSpan>,
    /// Padded text length `T`.
    pub text_len: usize,
    /// Output-image tokens `N = (H/16)*(W/16)`.
    pub num_output_tokens: usize,
}

impl Collated {
    /// Total sequence length `S = T + 1 + N`.
    pub fn seq_len(&self) -> usize {
        self.text_len + 1 + self.num_output_tokens
    }
}

/// Pads `rows` to a common length and builds positions and the attention mask for `num_output_tokens`
/// output-image tokens (all rows share one output size at inference).
pub fn collate(
    rows: &[TokenRow],
    num_output_tokens: usize,
    device: &Device,
) -> ProcessorResult<Collated> {
    let t = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
    let n = num_output_tokens;
    let s = t + 1 + n;
    let b = rows.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut pos = Vec::with_capacity(b * s);
    let mut mask = vec![0f32; b * s * s];
    let mut spans = Vec::new();
    for (row, r) in rows.iter().enumerate() {
        let l = r.ids.len();
        let pad = t - l;
        ids.extend(std::iter::repeat_n(i64::from(PAD_TOKEN_ID), pad));
        ids.extend(r.ids.iter().map(|&id| i64::from(id)));
        pos.extend(std::iter::repeat_n(0i64, pad));
        pos.extend(0..(l + 1 + n) as i64);

        let m = &mut mask[row * s * s..(row + 1) * s * s];
        // Padding query rows attend everywhere (harmless; keeps softmax finite).
        m[..pad * s].fill(1.0);
        for q in 0..(l + 1 + n) {
            let line = &mut m[(pad + q) * s..(pad + q + 1) * s];
            if q <= l {
                // Text and the time token: causal among themselves, never the output image.
                line[pad..=pad + q].fill(1.0);
            } else {
                // Output-image tokens see every non-padding token.
                line[pad..].fill(1.0);
            }
        }
        for &(start, end) in &r.spans {
            let (start, end) = (start + pad, end + pad);
            for q in start..end {
                m[q * s + start..q * s + end].fill(1.0);
            }
            spans.push(ImageSpan { row, start, end });
        }
    }
    Ok(Collated {
        input_ids: Tensor::from_vec(ids, (b, t), device)?,
        attention_mask: Tensor::from_vec(mask, (b, s, s), device)?,
        position_ids: Tensor::from_vec(pos, (b, s), device)?,
        image_spans: spans,
        text_len: t,
        num_output_tokens: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows_of(mask: &Tensor) -> Vec<Vec<Vec<u8>>> {
        mask.to_vec3::<f32>()
            .unwrap()
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|l| l.into_iter().map(|v| v as u8).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn pads_left_and_builds_mask_and_positions() {
        let rows = vec![
            TokenRow {
                ids: vec![1, 7, 0, 0, 9],
                spans: vec![(2, 4)],
            },
            TokenRow {
                ids: vec![1, 5, 6],
                spans: vec![],
            },
        ];
        let c = collate(&rows, 1, &Device::Cpu).unwrap();
        assert_eq!(
            c.input_ids.to_vec2::<i64>().unwrap(),
            vec![vec![1, 7, 0, 0, 9], vec![2, 2, 1, 5, 6]]
        );
        assert_eq!(
            c.position_ids.to_vec2::<i64>().unwrap(),
            vec![vec![0, 1, 2, 3, 4, 5, 6], vec![0, 0, 0, 1, 2, 3, 4]]
        );
        assert_eq!(
            c.image_spans,
            vec![ImageSpan {
                row: 0,
                start: 2,
                end: 4
            }]
        );
        let m = rows_of(&c.attention_mask);
        assert_eq!(
            m[0],
            vec![
                vec![1, 0, 0, 0, 0, 0, 0],
                vec![1, 1, 0, 0, 0, 0, 0],
                vec![1, 1, 1, 1, 0, 0, 0],
                vec![1, 1, 1, 1, 0, 0, 0],
                vec![1, 1, 1, 1, 1, 0, 0],
                vec![1, 1, 1, 1, 1, 1, 0],
                vec![1, 1, 1, 1, 1, 1, 1],
            ]
        );
        assert_eq!(
            m[1],
            vec![
                vec![1, 1, 1, 1, 1, 1, 1],
                vec![1, 1, 1, 1, 1, 1, 1],
                vec![0, 0, 1, 0, 0, 0, 0],
                vec![0, 0, 1, 1, 0, 0, 0],
                vec![0, 0, 1, 1, 1, 0, 0],
                vec![0, 0, 1, 1, 1, 1, 0],
                vec![0, 0, 1, 1, 1, 1, 1],
            ]
        );
    }
}
