//! Prompt processing: chat template, placeholders, tokenization, image preprocessing, CFG branches, collation.
