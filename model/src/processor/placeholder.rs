//! Splitting a templated prompt on its image placeholders (`<|image_N|>`), as `re.split(r"<\|image_\d+\|>")`
//! and `re.findall` do in `process_multi_modal_prompt` (spec §6.3).

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
    let mut at = 0;
    while at < text.len() {
        if let Some((len, digits)) = placeholder_at(text, at) {
            let id = digits
                .parse::<u64>()
                .map_err(|_| ProcessorError::PlaceholderTooLarge {
                    prompt,
                    text: digits.to_string(),
                })?;
            chunks.push(&text[chunk_start..at]);
            ids.push(id);
            at += len;
            chunk_start = at;
        } else {
            // Advance one character (keep `at` on a char boundary).
            at += text[at..].chars().next().map_or(1, char::len_utf8);
        }
    }
    chunks.push(&text[chunk_start..]);
    Ok(SplitPrompt { chunks, ids })
}

/// Checks that the distinct ids are exactly `1..=K` with `K == num_images`; returns `K`.
pub fn validate_ids(ids: &[u64], num_images: usize, prompt: usize) -> ProcessorResult<usize> {
    let mut distinct: Vec<u64> = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let contiguous = distinct
        .iter()
        .enumerate()
        .all(|(i, &id)| id == i as u64 + 1);
    if !contiguous {
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
}
