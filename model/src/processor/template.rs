//! OmniGen's chat template and fixed prompts (`processor.py`, spec §6.1, §6.5, §6.6).

/// The negative prompt the official processor uses when none is given.
pub const DEFAULT_NEGATIVE_PROMPT: &str = "low quality, jpeg artifacts, ugly, duplicate, morbid, mutilated, extra fingers, mutated hands, poorly drawn hands, poorly drawn face, mutation, deformed, blurry, dehydrated, bad anatomy, bad proportions, extra limbs, cloned face, disfigured, gross proportions, malformed limbs, missing arms, missing legs, extra arms, extra legs, fused fingers, too many fingers.";

/// Wraps an instruction in OmniGen's chat template (`add_prefix_instruction`). There is no space between the
/// instruction and `<|end|>`.
pub fn apply_chat_template(instruction: &str) -> String {
    format!(
        "<|user|>\nGenerate an image according to the following instructions\n{instruction}<|end|>\n<|assistant|>\n<|diffusion|>"
    )
}

/// The image-guidance prompt for `num_images` images: `"<img><|image_1|></img> <img><|image_2|></img> ..."`.
pub fn image_only_prompt(num_images: usize) -> String {
    (1..=num_images)
        .map(|i| format!("<img><|image_{i}|></img>"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_wraps_without_extra_spaces() {
        assert_eq!(
            apply_chat_template("a cat"),
            "<|user|>\nGenerate an image according to the following instructions\na cat<|end|>\n<|assistant|>\n<|diffusion|>"
        );
    }

    #[test]
    fn image_only_prompt_joins_with_spaces() {
        assert_eq!(
            image_only_prompt(2),
            "<img><|image_1|></img> <img><|image_2|></img>"
        );
        assert_eq!(image_only_prompt(0), "");
    }
}
