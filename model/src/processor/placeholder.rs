//! The `<|image_N|>` placeholders of an instruction: splitting a templated prompt on them, as
//! `re.split(r"<\|image_\d+\|>")` and `re.findall` do in `process_multi_modal_prompt` (spec §6.3), the
//! numbering rule (the distinct numbers are exactly `1..=K` for `K` images), checking an instruction
//! against the images a caller has before anything runs, and renumbering for few-shot examples.

use std::collections::BTreeSet;

use super::error::{ProcessorError, ProcessorResult};

const OPEN: &str = "<|image_";
const CLOSE: &str = "|>";

/// A prompt cut at its placeholders: `chunks.len() == ids.len() + 1`; placeholder `i` sits between
/// `chunks[i]` and `chunks[i + 1]`. The `<img>`/`</img>` text around a placeholder stays in the chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitPrompt<'a> {
    /// Text pieces between placeholders (possibly empty).
    pub chunks: Vec<&'a str>,
    /// Placeholder numbers in text order (1-based as written).
    pub ids: Vec<u64>,
}

/// Length of a placeholder match starting at byte `at`, and its digits, if one starts there.
fn placeholder_at(text: &str, at: usize) -> Option<(usize, &str)> {
    let rest = text[at..].strip_prefix(OPEN)?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || !rest[digits..].starts_with(CLOSE) {
        return None;
    }
    Some((OPEN.len() + digits + CLOSE.len(), &rest[..digits]))
}

/// Splits `text` at every `<|image_<digits>|>` (leftmost, non-overlapping, like Python's `re`). `prompt` only
/// labels errors.
pub fn split_placeholders(text: &str, prompt: usize) -> ProcessorResult<SplitPrompt<'_>> {
    let mut chunks = Vec::new();
    let mut ids = Vec::new();
    let mut chunk_start = 0;
    for (start, digits) in placeholder_spans(text) {
        let id = digits
            .parse::<u64>()
            .map_err(|_| ProcessorError::PlaceholderTooLarge {
                prompt,
                text: digits.to_string(),
            })?;
        chunks.push(&text[chunk_start..start]);
        ids.push(id);
        chunk_start = start + OPEN.len() + digits.len() + CLOSE.len();
    }
    chunks.push(&text[chunk_start..]);
    Ok(SplitPrompt { chunks, ids })
}

/// The first number missing from `1..=max(numbers)` and that maximum: the gap the numbering rule forbids.
fn first_gap(numbers: &BTreeSet<u64>) -> Option<(u64, u64)> {
    let &used = numbers.iter().next_back()?;
    (1..used)
        .find(|n| !numbers.contains(n))
        .map(|missing| (missing, used))
}

/// Checks that the distinct ids are exactly `1..=K` with `K == num_images`; returns `K`.
pub fn validate_ids(ids: &[u64], num_images: usize, prompt: usize) -> ProcessorResult<usize> {
    let numbers: BTreeSet<u64> = ids.iter().copied().collect();
    let distinct: Vec<u64> = numbers.iter().copied().collect();
    if numbers.contains(&0) || first_gap(&numbers).is_some() {
        return Err(ProcessorError::PlaceholderIds {
            prompt,
            found: distinct,
        });
    }
    if distinct.len() != num_images {
        return Err(ProcessorError::ImageCountMismatch {
            prompt,
            placeholders: distinct.len(),
            images: num_images,
        });
    }
    Ok(distinct.len())
}

/// How an instruction's placeholders and the images a caller has fail to fit together
/// ([`check_placeholders`]). Numbers are 1-based, as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    /// `<|image_N|>` appears but image `N` is not given.
    #[error("the instruction refers to <|image_{0}|> but image {0} is not given")]
    MissingImage(usize),
    /// Image `N` is given but the instruction never refers to it.
    #[error("image {0} is given but the instruction never refers to it; add <img><|image_{0}|></img> where the picture belongs")]
    Unreferenced(usize),
    /// The numbers have a gap (OmniGen numbers images 1..K without holes).
    #[error("images must be numbered from 1 without gaps: image {missing} is not used but image {used} is")]
    Gap {
        /// The first unused number.
        missing: usize,
        /// A higher number that is used.
        used: usize,
    },
    /// `<|image_0|>`, or a number above the caller's `max_images`.
    #[error("placeholder <|image_{text}|> is out of range: use <|image_1|> … <|image_{max}|>")]
    OutOfRange {
        /// The digits as written.
        text: String,
        /// The highest number the caller offers.
        max: usize,
    },
}

/// The image numbers `text` refers to, in order of appearance (repeats kept: an image may appear several
/// times). Text like `<|image_x|>` is not a placeholder for the reference either and is left alone.
/// Numbers must be in `1..=max_images`.
pub fn referenced_images(text: &str, max_images: usize) -> Result<Vec<usize>, PlaceholderError> {
    placeholder_spans(text)
        .map(|(_, digits)| match digits.parse::<usize>() {
            Ok(n) if (1..=max_images).contains(&n) => Ok(n),
            _ => Err(PlaceholderError::OutOfRange {
                text: digits.to_string(),
                max: max_images,
            }),
        })
        .collect()
}

/// Checks an instruction against the numbers (1-based) of the images given for it, before anything is
/// tokenized: every placeholder has its image, every image is referred to, and the numbers are `1..=K`
/// (the rule [`validate_ids`] enforces at tokenization). `max_images` bounds the numbers (a front end's
/// number of image slots).
pub fn check_placeholders(
    text: &str,
    given: &[usize],
    max_images: usize,
) -> Result<(), PlaceholderError> {
    let referenced: BTreeSet<usize> = referenced_images(text, max_images)?.into_iter().collect();
    let given: BTreeSet<usize> = given.iter().copied().collect();
    if let Some(&n) = referenced.difference(&given).next() {
        return Err(PlaceholderError::MissingImage(n));
    }
    if let Some(&n) = given.difference(&referenced).next() {
        return Err(PlaceholderError::Unreferenced(n));
    }
    // Now referenced == given; both must be exactly 1..=K.
    let numbers: BTreeSet<u64> = referenced.iter().map(|&n| n as u64).collect();
    if let Some((missing, used)) = first_gap(&numbers) {
        return Err(PlaceholderError::Gap {
            missing: missing as usize,
            used: used as usize,
        });
    }
    Ok(())
}

/// Rewrites every `<|image_N|>` as `<|image_{N+offset}|>` (few-shot examples take the first numbers).
pub fn shift_placeholders(text: &str, offset: usize) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut rest = 0;
    for (start, digits) in placeholder_spans(text) {
        out.push_str(&text[rest..start]);
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&placeholder(n + offset)),
            // Too large to be an image number: left as written.
            Err(_) => out.push_str(&text[start..start + OPEN.len() + digits.len() + CLOSE.len()]),
        }
        rest = start + OPEN.len() + digits.len() + CLOSE.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// `<img><|image_N|></img>`: how an image is placed in an instruction.
pub fn image_tag(n: usize) -> String {
    format!("<img>{}</img>", placeholder(n))
}

fn placeholder(n: usize) -> String {
    format!("{OPEN}{n}{CLOSE}")
}

/// `(byte offset, digits)` of every `<|image_<digits>|>` in `text`, leftmost and non-overlapping.
fn placeholder_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < text.len() {
            let start = at;
            if let Some((len, digits)) = placeholder_at(text, start) {
                at += len;
                return Some((start, digits));
            }
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python_re_split() {
        let s = split_placeholders(
            "a<img><|image_1|></img> b <|image_12|>c<|image_|><|image_x|>",
            0,
        )
        .unwrap();
        assert_eq!(
            s.chunks,
            vec!["a<img>", "</img> b ", "c<|image_|><|image_x|>"]
        );
        assert_eq!(s.ids, vec![1, 12]);
    }

    #[test]
    fn no_placeholder_gives_one_chunk() {
        let s = split_placeholders("plain ünïcode text", 0).unwrap();
        assert_eq!(s.chunks, vec!["plain ünïcode text"]);
        assert!(s.ids.is_empty());
    }

    #[test]
    fn adjacent_and_edge_placeholders_give_empty_chunks() {
        let s = split_placeholders("<|image_1|><|image_2|>", 0).unwrap();
        assert_eq!(s.chunks, vec!["", "", ""]);
        assert_eq!(s.ids, vec![1, 2]);
    }

    #[test]
    fn huge_number_is_an_error() {
        let err = split_placeholders("<|image_99999999999999999999999|>", 3).unwrap_err();
        assert!(
            matches!(err, ProcessorError::PlaceholderTooLarge { prompt: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn ids_must_be_contiguous_from_one_and_match_the_image_count() {
        assert_eq!(validate_ids(&[2, 1, 2], 2, 0).unwrap(), 2);
        assert!(matches!(
            validate_ids(&[2], 1, 0),
            Err(ProcessorError::PlaceholderIds { .. })
        ));
        assert!(matches!(
            validate_ids(&[0, 1], 2, 0),
            Err(ProcessorError::PlaceholderIds { .. })
        ));
        assert!(matches!(
            validate_ids(&[1, 3], 2, 0),
            Err(ProcessorError::PlaceholderIds { .. })
        ));
        assert!(matches!(
            validate_ids(&[1, 1], 2, 0),
            Err(ProcessorError::ImageCountMismatch {
                placeholders: 1,
                images: 2,
                ..
            })
        ));
        assert!(matches!(
            validate_ids(&[], 1, 0),
            Err(ProcessorError::ImageCountMismatch {
                placeholders: 0,
                images: 1,
                ..
            })
        ));
        assert_eq!(validate_ids(&[], 0, 0).unwrap(), 0);
    }

    #[test]
    fn finds_placeholders_in_order_with_repeats() {
        let text = "<img><|image_2|></img> and <img><|image_1|></img> in <img><|image_2|></img>";
        assert_eq!(referenced_images(text, 8), Ok(vec![2, 1, 2]));
        assert_eq!(referenced_images("no images <|image_x|>", 8), Ok(vec![]));
    }

    #[test]
    fn out_of_range_numbers_are_errors() {
        let out_of_range = |text: &str| PlaceholderError::OutOfRange {
            text: text.into(),
            max: 8,
        };
        assert_eq!(referenced_images("<|image_0|>", 8), Err(out_of_range("0")));
        assert_eq!(referenced_images("<|image_9|>", 8), Err(out_of_range("9")));
        assert_eq!(
            out_of_range("9").to_string(),
            "placeholder <|image_9|> is out of range: use <|image_1|> … <|image_8|>"
        );
    }

    #[test]
    fn placeholder_without_image_is_reported() {
        let err = check_placeholders("<img><|image_1|></img> <img><|image_2|></img>", &[1], 8);
        assert_eq!(err, Err(PlaceholderError::MissingImage(2)));
    }

    #[test]
    fn given_but_unreferenced_image_is_reported() {
        let err = check_placeholders("<img><|image_1|></img> make it blue", &[1, 2], 8);
        assert_eq!(err, Err(PlaceholderError::Unreferenced(2)));
        assert_eq!(
            check_placeholders("a cat", &[1], 8),
            Err(PlaceholderError::Unreferenced(1))
        );
    }

    #[test]
    fn gaps_are_reported() {
        let err = check_placeholders("<|image_1|> <|image_3|>", &[1, 3], 8);
        assert_eq!(
            err,
            Err(PlaceholderError::Gap {
                missing: 2,
                used: 3
            })
        );
    }

    #[test]
    fn consistent_instructions_pass() {
        assert_eq!(check_placeholders("a cat", &[], 8), Ok(()));
        assert_eq!(
            check_placeholders("<|image_2|> then <|image_1|> <|image_1|>", &[2, 1], 8),
            Ok(())
        );
    }

    #[test]
    fn shifting_renumbers_only_placeholders() {
        assert_eq!(
            shift_placeholders(
                "Input: <img><|image_1|></img> <|image_2|> <|image_x|> Output:",
                3
            ),
            "Input: <img><|image_4|></img> <|image_5|> <|image_x|> Output:"
        );
        assert_eq!(image_tag(2), "<img><|image_2|></img>");
    }
}
