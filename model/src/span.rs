//! Types shared by the prompt processor and the transformer, so neither imports the other.

/// A condition image's token span `[start, end)` in batch row `row` of `input_ids`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpan {
    /// Batch row.
    pub row: usize,
    /// First token (after left padding).
    pub start: usize,
    /// One past the last token.
    pub end: usize,
}
