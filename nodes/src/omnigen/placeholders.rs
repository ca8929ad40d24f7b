//! The `<|image_N|>` placeholders of an OmniGen instruction: finding them, checking them against the
//! images actually connected, and renumbering them when few-shot examples are put in front.
//!
//! The reference processor splits the templated prompt on `<\|image_\d+\|>` and requires the set of
//! numbers to be exactly `1..=K` with `K` images given; anything else fails deep inside sampling. We
//! check the same rules up front so the user gets an error naming the input to fix.

use std::collections::BTreeSet;

/// How many image inputs `BuildPrompt` offers (`image_1` … `image_8`).
pub const MAX_IMAGES: usize = 8;

const OPEN: &str = "<|image_";
const CLOSE: &str = "|>";

/// A mistake in how an instruction's placeholders and the connected images fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// `<|image_N|>` appears but `image_N` has nothing connected.
    #[error("the instruction refers to <|image_{0}|> but nothing is connected to image_{0}; connect an image (a LATENT from EncodeVAE) to image_{0} or remove the placeholder")]
    NotConnected(usize),
    /// `image_N` is connected but the instruction never mentions it.
    #[error("image_{0} is connected but the instruction never refers to it; add <img><|image_{0}|></img> where the picture belongs, or disconnect image_{0}")]
    NotReferenced(usize),
    /// The numbers have a gap (OmniGen numbers images 1..K without holes).
    #[error("images must be numbered from 1 without gaps: image_{missing} is not used but image_{used} is; renumber the placeholders and inputs")]
    Gap {
        /// The first unused number.
        missing: usize,
        /// A higher number that is used.
        used: usize,
    },
    /// `<|image_0|>`, `<|image_99|>` or a malformed tag.
    #[error("placeholder <|image_{0}|> is out of range: use <|image_1|> … <|image_{max}|>", max = MAX_IMAGES)]
    OutOfRange(String),
}

/// The image numbers referenced by `text`, in order of appearance (repeats kept: OmniGen lets one image
/// appear several times). Text like `<|image_x|>` that is not a number is not a placeholder for the
/// reference either, so it is left alone.
pub fn referenced_images(text: &str) -> Result<Vec<usize>, PlaceholderError> {
    let mut found = Vec::new();
    for (_, digits) in placeholder_spans(text) {
        match digits.parse::<usize>() {
            Ok(n) if (1..=MAX_IMAGES).contains(&n) => found.push(n),
            _ => return Err(PlaceholderError::OutOfRange(digits.to_string())),
        }
    }
    Ok(found)
}

/// Checks an instruction against the connected image slots (1-based numbers).
pub fn check_against_connected(text: &str, connected: &[usize]) -> Result<(), PlaceholderError> {
    let referenced: BTreeSet<usize> = referenced_images(text)?.into_iter().collect();
    let connected: BTreeSet<usize> = connected.iter().copied().collect();
    if let Some(n) = referenced.difference(&connected).next() {
        return Err(PlaceholderError::NotConnected(*n));
    }
    if let Some(n) = connected.difference(&referenced).next() {
        return Err(PlaceholderError::NotReferenced(*n));
    }
    // Now referenced == connected; both must be exactly 1..=K.
    if let Some(&used) = referenced.iter().next_back() {
        if let Some(missing) = (1..used).find(|n| !referenced.contains(n)) {
            return Err(PlaceholderError::Gap { missing, used });
        }
    }
    Ok(())
}

/// Rewrites every `<|image_N|>` as `<|image_{N+offset}|>`.
pub fn shift_images(text: &str, offset: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = 0;
    for (start, digits) in placeholder_spans(text) {
        let n: usize = digits.parse().unwrap_or(0);
        out.push_str(&text[rest..start]);
        out.push_str(&tag(n + offset));
        rest = start + OPEN.len() + digits.len() + CLOSE.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// `<img><|image_N|></img>`: how an image is placed in an instruction.
pub fn image_tag(n: usize) -> String {
    format!("<img>{}</img>", tag(n))
}

fn tag(n: usize) -> String {
    format!("{OPEN}{n}{CLOSE}")
}

/// `(byte offset of "<|image_", the digits)` for every `<|image_<digits>|>` in `text`.
fn placeholder_spans(text: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(OPEN) {
        let start = from + pos;
        let after = &text[start + OPEN.len()..];
        let digits_len = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len > 0 && after[digits_len..].starts_with(CLOSE) {
            spans.push((start, &after[..digits_len]));
            from = start + OPEN.len() + digits_len + CLOSE.len();
        } else {
            from = start + OPEN.len();
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_placeholders_in_order_with_repeats() {
        let text = "<img><|image_2|></img> and <img><|image_1|></img> in <img><|image_2|></img>";
        assert_eq!(referenced_images(text), Ok(vec![2, 1, 2]));
        assert_eq!(referenced_images("no images <|image_x|>"), Ok(vec![]));
    }

    #[test]
    fn out_of_range_numbers_are_errors() {
        assert_eq!(
            referenced_images("<|image_0|>"),
            Err(PlaceholderError::OutOfRange("0".into()))
        );
        assert_eq!(
            referenced_images("<|image_9|>"),
            Err(PlaceholderError::OutOfRange("9".into()))
        );
    }

    #[test]
    fn placeholder_without_image_is_reported() {
        let err = check_against_connected("<img><|image_1|></img> <img><|image_2|></img>", &[1]);
        assert_eq!(err, Err(PlaceholderError::NotConnected(2)));
        assert!(err.unwrap_err().to_string().contains("image_2"));
    }

    #[test]
    fn connected_but_unreferenced_image_is_reported() {
        let err = check_against_connected("<img><|image_1|></img> make it blue", &[1, 2]);
        assert_eq!(err, Err(PlaceholderError::NotReferenced(2)));
        assert_eq!(
            check_against_connected("a cat", &[1]),
            Err(PlaceholderError::NotReferenced(1))
        );
    }

    #[test]
    fn gaps_are_reported() {
        let err = check_against_connected("<|image_1|> <|image_3|>", &[1, 3]);
        assert_eq!(
            err,
            Err(PlaceholderError::Gap {
                missing: 2,
                used: 3
            })
        );
    }

    #[test]
    fn consistent_prompts_pass() {
        assert_eq!(check_against_connected("a cat", &[]), Ok(()));
        assert_eq!(
            check_against_connected("<|image_2|> then <|image_1|> <|image_1|>", &[2, 1]),
            Ok(())
        );
    }

    #[test]
    fn shifting_renumbers_only_placeholders() {
        assert_eq!(
            shift_images(
                "Input: <img><|image_1|></img> <|image_2|> <|image_x|> Output:",
                3
            ),
            "Input: <img><|image_4|></img> <|image_5|> <|image_x|> Output:"
        );
        assert_eq!(image_tag(2), "<img><|image_2|></img>");
    }
}
