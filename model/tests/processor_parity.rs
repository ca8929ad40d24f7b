//! Processor parity with the official `OmniGenProcessor` (omnigen 1.0.3): ids, masks, positions, spans,
//! preprocessed pixels and Pillow resizes must be *exactly* equal to the fixtures made by
//! `model/scripts/make_fixtures.py` (see `tests/fixtures/README.md`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use omnigen_model::processor::{
    apply_chat_template, crop_geometry, preprocess_image, preprocess_rgb, resize, BatchRequest,
    Filter, InstructionInput, ProcessedBatch, Processor, ProcessorError, DEFAULT_NEGATIVE_PROMPT,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cases() -> Result<Value> {
    let path = fixtures().join("cases.json");
    Ok(serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| path.display().to_string())?,
    )?)
}

fn reference(file: &str) -> Result<HashMap<String, Tensor>> {
    let path = fixtures().join("reference").join(file);
    candle_core::safetensors::load(&path, &Device::Cpu).with_context(|| path.display().to_string())
}

fn get<'a>(r: &'a HashMap<String, Tensor>, key: &str) -> Result<&'a Tensor> {
    r.get(key)
        .ok_or_else(|| anyhow!("reference key `{key}` missing"))
}

fn processor() -> Result<Processor> {
    Ok(Processor::from_tokenizer_file(
        fixtures().join("tiny/tokenizer.json"),
    )?)
}

fn load_rgb(rel: &str) -> Result<RgbImage> {
    Ok(image::open(fixtures().join(rel))
        .with_context(|| rel.to_string())?
        .to_rgb8())
}

fn str_of<'a>(v: &'a Value, key: &str) -> Result<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| anyhow!("`{key}` is not a string in {v}"))
}

fn u64_of(v: &Value, key: &str) -> Result<u64> {
    v[key]
        .as_u64()
        .ok_or_else(|| anyhow!("`{key}` is not an integer in {v}"))
}

/// Asserts bit-exact equality (after converting both to `dtype`), naming the first differing element.
fn assert_exact(what: &str, ours: &Tensor, theirs: &Tensor, dtype: DType) -> Result<()> {
    if ours.dims() != theirs.dims() {
        bail!(
            "{what}: shape {:?} != reference {:?}",
            ours.dims(),
            theirs.dims()
        );
    }
    let a = ours
        .to_dtype(dtype)?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    let b = theirs
        .to_dtype(dtype)?
        .flatten_all()?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
        bail!(
            "{what}: element {i} is {} but the reference has {} (shape {:?})",
            a[i],
            b[i],
            ours.dims()
        );
    }
    Ok(())
}

#[test]
fn tokenizer_adds_bos_like_the_reference() -> Result<()> {
    let (cases, refs, proc) = (cases()?, reference("processor.safetensors")?, processor()?);
    let list = cases["tokenizer"]
        .as_array()
        .ok_or_else(|| anyhow!("no tokenizer cases"))?;
    assert!(!list.is_empty());
    for case in list {
        let i = u64_of(case, "index")?;
        let ids = proc.encode(&apply_chat_template(str_of(case, "prompt")?), "test")?;
        let ours = Tensor::new(
            ids.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
            &Device::Cpu,
        )?;
        assert_exact(
            &format!("tok.{i}"),
            &ours,
            get(&refs, &format!("tok.{i}.ids"))?,
            DType::I64,
        )?;
    }
    Ok(())
}

#[test]
fn pillow_resizes_are_bit_exact() -> Result<()> {
    let (cases, refs) = (cases()?, reference("preprocess.safetensors")?);
    let list = cases["resize"]
        .as_array()
        .ok_or_else(|| anyhow!("no resize cases"))?;
    assert!(list.len() >= 6);
    for case in list {
        let name = str_of(case, "name")?;
        let src = load_rgb(str_of(&cases["images"], str_of(case, "image")?)?)?;
        let filter = match str_of(case, "filter")? {
            "bicubic" => Filter::Bicubic,
            "box" => Filter::Box,
            other => bail!("unknown filter {other}"),
        };
        let (w, h) = (
            u64_of(case, "width")? as u32,
            u64_of(case, "height")? as u32,
        );
        let out = resize(&src, w, h, filter);
        let ours = Tensor::from_vec(out.into_raw(), (h as usize, w as usize, 3), &Device::Cpu)?;
        assert_exact(
            &format!("resize.{name}"),
            &ours,
            get(&refs, &format!("resize.{name}"))?,
            DType::U8,
        )?;
    }
    Ok(())
}

#[test]
fn preprocessed_pixels_are_bit_exact() -> Result<()> {
    let (cases, refs) = (cases()?, reference("preprocess.safetensors")?);
    let list = cases["preprocess"]
        .as_array()
        .ok_or_else(|| anyhow!("no preprocess cases"))?;
    assert!(list.len() >= 8);
    for case in list {
        let name = str_of(case, "name")?;
        let max = u64_of(case, "max_input_image_size")? as u32;
        let img = load_rgb(str_of(case, "image")?)?;
        let geo = crop_geometry(img.width(), img.height(), max)?;
        let want_hw: Vec<u64> = case["out_hw"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(
            vec![u64::from(geo.height), u64::from(geo.width)],
            want_hw,
            "{name}: geometry"
        );
        let ours = preprocess_image(&img, max, &Device::Cpu)?.squeeze(0)?;
        assert_exact(
            &format!("pre.{name}"),
            &ours,
            get(&refs, &format!("pre.{name}.pixels"))?,
            DType::F32,
        )?;
    }
    Ok(())
}

/// Builds the request of a `cases.json["processor"]` entry; returns it and each prompt's preprocessed images.
fn request_of(case: &Value, image_files: &Value) -> Result<(BatchRequest, Vec<Vec<Tensor>>)> {
    let max = u64_of(case, "max_input_image_size")? as u32;
    let instructions = case["instructions"]
        .as_array()
        .ok_or_else(|| anyhow!("instructions"))?;
    let mut prompts = Vec::new();
    let mut pixels = Vec::new();
    for (p, instruction) in instructions.iter().enumerate() {
        let names: Vec<&str> = case["images"]
            .as_array()
            .and_then(|rows| rows.get(p))
            .and_then(Value::as_array)
            .map(|row| row.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut imgs = Vec::new();
        for n in names {
            imgs.push(preprocess_image(
                &load_rgb(str_of(image_files, n)?)?,
                max,
                &Device::Cpu,
            )?);
        }
        let sizes = imgs
            .iter()
            .map(|t| Ok((t.dim(2)?, t.dim(3)?)))
            .collect::<Result<Vec<_>>>()?;
        prompts.push(InstructionInput::new(
            instruction.as_str().ok_or_else(|| anyhow!("instruction"))?,
            sizes,
        ));
        pixels.push(imgs);
    }
    let req = BatchRequest {
        prompts,
        negative_prompt: case["negative_prompt"].as_str().map(str::to_string),
        use_img_guidance: case["use_img_cfg"].as_bool().unwrap_or(true),
        separate_cfg: case["separate_cfg"].as_bool().unwrap_or(false),
        height: u64_of(case, "height")? as usize,
        width: u64_of(case, "width")? as usize,
        use_input_image_size_as_output: case["use_input_image_size_as_output"]
            .as_bool()
            .unwrap_or(false),
    };
    Ok((req, pixels))
}

fn check_batch(
    group: &str,
    name: &str,
    out: &ProcessedBatch,
    pixels: &[Vec<Tensor>],
    refs: &HashMap<String, Tensor>,
    num_branches: Option<u64>,
) -> Result<()> {
    let prefixes: Vec<String> = match num_branches {
        Some(n) => (0..n).map(|i| format!("{group}.{name}.b{i}")).collect(),
        None => vec![format!("{group}.{name}")],
    };
    assert_eq!(
        out.batches.len(),
        prefixes.len(),
        "{name}: number of collated batches"
    );
    for (branch, prefix) in out.batches.iter().zip(&prefixes) {
        let c = &branch.collated;
        assert_exact(
            &format!("{prefix}.input_ids"),
            &c.input_ids,
            get(refs, &format!("{prefix}.input_ids"))?,
            DType::I64,
        )?;
        assert_exact(
            &format!("{prefix}.position_ids"),
            &c.position_ids,
            get(refs, &format!("{prefix}.position_ids"))?,
            DType::I64,
        )?;
        assert_exact(
            &format!("{prefix}.attention_mask"),
            &c.attention_mask,
            get(refs, &format!("{prefix}.attention_mask"))?,
            DType::F32,
        )?;
        let spans: Vec<i64> = c
            .image_spans
            .iter()
            .flat_map(|s| [s.row as i64, s.start as i64, s.end as i64])
            .collect();
        let spans = Tensor::from_vec(spans, (c.image_spans.len(), 3), &Device::Cpu)?;
        assert_exact(
            &format!("{prefix}.image_sizes"),
            &spans,
            get(refs, &format!("{prefix}.image_sizes"))?,
            DType::I64,
        )?;
        assert_eq!(
            branch.image_refs.len(),
            c.image_spans.len(),
            "{prefix}: one image per span"
        );
        let gathered = branch.gather(pixels)?;
        for (k, ours) in gathered.iter().enumerate() {
            assert_exact(
                &format!("{prefix}.pixels.{k}"),
                ours,
                get(refs, &format!("{prefix}.pixels.{k}"))?,
                DType::F32,
            )?;
        }
        assert!(
            !refs.contains_key(&format!("{prefix}.pixels.{}", branch.image_refs.len())),
            "{prefix}: too few images"
        );
    }
    Ok(())
}

/// Runs every case of `cases.json[list]` through `proc` and compares with `file` (keys `<group>.<case>...`).
fn check_processor_cases(
    proc: &Processor,
    list: &str,
    file: &str,
    group: &str,
    min_cases: usize,
) -> Result<()> {
    let (cases, refs) = (cases()?, reference(file)?);
    let list = cases[list]
        .as_array()
        .ok_or_else(|| anyhow!("no {list} cases"))?;
    assert!(list.len() >= min_cases);
    for case in list {
        let name = str_of(case, "name")?;
        let (req, pixels) = request_of(case, &cases["images"])?;
        let out = proc
            .process(&req, &Device::Cpu)
            .with_context(|| format!("case {name}"))?;
        check_batch(
            group,
            name,
            &out,
            &pixels,
            &refs,
            case["num_branches"].as_u64(),
        )
        .with_context(|| format!("case {name}"))?;
    }
    Ok(())
}

#[test]
fn processor_outputs_match_the_reference_exactly() -> Result<()> {
    check_processor_cases(
        &processor()?,
        "processor",
        "processor.safetensors",
        "proc",
        10,
    )
}

/// The same processor with a Llama/Phi-3-style tokenizer (BPE, `Prepend("▁")` normalizer, no pre-tokenizer):
/// each placeholder-separated chunk gets its own dummy prefix and BOS, exactly as in Python.
#[test]
fn processor_matches_with_a_llama_style_tokenizer() -> Result<()> {
    let proc =
        Processor::from_tokenizer_file(fixtures().join("tokenizer-llama-style/tokenizer.json"))?;
    check_processor_cases(
        &proc,
        "processor_llama_style",
        "processor_llama_style.safetensors",
        "llama",
        5,
    )?;
    let (cases, refs) = (cases()?, reference("processor_llama_style.safetensors")?);
    for case in cases["tokenizer"].as_array().into_iter().flatten() {
        let i = u64_of(case, "index")?;
        let ids = proc.encode(&apply_chat_template(str_of(case, "prompt")?), "test")?;
        let ours = Tensor::new(
            ids.iter().map(|&v| i64::from(v)).collect::<Vec<_>>(),
            &Device::Cpu,
        )?;
        assert_exact(
            &format!("llama tok.{i}"),
            &ours,
            get(&refs, &format!("tok.{i}.ids"))?,
            DType::I64,
        )?;
    }
    Ok(())
}

#[test]
fn input_image_size_becomes_the_output_size() -> Result<()> {
    let cases = cases()?;
    let case = cases["processor"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == "input_size_as_output"))
        .ok_or_else(|| anyhow!("case input_size_as_output missing"))?;
    let (req, pixels) = request_of(case, &cases["images"])?;
    let out = processor()?.process(&req, &Device::Cpu)?;
    let (h, w) = (pixels[0][0].dim(2)?, pixels[0][0].dim(3)?);
    assert_eq!(out.output_size, (h, w));
    assert_eq!(out.num_branches, 3);
    assert!(out
        .batches
        .iter()
        .all(|b| b.collated.num_output_tokens == h * w / 256));
    Ok(())
}

fn request(prompts: Vec<InstructionInput>) -> BatchRequest {
    BatchRequest {
        prompts,
        negative_prompt: None,
        use_img_guidance: true,
        separate_cfg: true,
        height: 32,
        width: 48,
        use_input_image_size_as_output: false,
    }
}

#[test]
fn bad_placeholders_and_counts_are_clear_errors() -> Result<()> {
    let proc = processor()?;
    let run = |instruction: &str, images: Vec<(usize, usize)>| {
        proc.process(
            &request(vec![InstructionInput::new(instruction, images)]),
            &Device::Cpu,
        )
    };
    let err = run("<img><|image_2|></img> x", vec![(16, 16)]).unwrap_err();
    assert!(
        matches!(&err, ProcessorError::PlaceholderIds { found, .. } if found == &vec![2]),
        "{err}"
    );
    assert!(err.to_string().contains("1..K"), "{err}");

    let err = run(
        "<img><|image_1|></img> <img><|image_3|></img>",
        vec![(16, 16); 3],
    )
    .unwrap_err();
    assert!(
        matches!(&err, ProcessorError::PlaceholderIds { found, .. } if found == &vec![1, 3]),
        "{err}"
    );

    let err = run("<img><|image_0|></img>", vec![(16, 16)]).unwrap_err();
    assert!(
        matches!(err, ProcessorError::PlaceholderIds { .. }),
        "{err}"
    );

    let err = run(
        "<img><|image_1|></img> twice <img><|image_1|></img>",
        vec![(16, 16); 2],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::ImageCountMismatch {
                placeholders: 1,
                images: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("1 distinct image placeholder(s) but 2 image(s)"),
        "{err}"
    );

    let err = run("no placeholder at all", vec![(16, 16)]).unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::ImageCountMismatch {
                placeholders: 0,
                images: 1,
                ..
            }
        ),
        "{err}"
    );

    let err = run("<img><|image_1|></img> without images", vec![]).unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::ImageCountMismatch {
                placeholders: 1,
                images: 0,
                ..
            }
        ),
        "{err}"
    );

    let err = run("<img><|image_1|></img>", vec![(20, 16)]).unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::BadImageSize {
                height: 20,
                width: 16,
                ..
            }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn bad_sizes_are_clear_errors() -> Result<()> {
    let proc = processor()?;
    let mut req = request(vec![InstructionInput::new("a cat", vec![])]);
    req.height = 40;
    let err = proc.process(&req, &Device::Cpu).unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::BadOutputSize {
                height: 40,
                width: 48
            }
        ),
        "{err}"
    );

    let mut req = request(vec![InstructionInput::new("a cat", vec![])]);
    req.use_input_image_size_as_output = true;
    let err = proc.process(&req, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, ProcessorError::InputSizeNeedsImage { prompt: 0 }),
        "{err}"
    );

    let mut req = request(vec![
        InstructionInput::new("<img><|image_1|></img>", vec![(16, 32)]),
        InstructionInput::new("<img><|image_1|></img>", vec![(32, 32)]),
    ]);
    req.use_input_image_size_as_output = true;
    let err = proc.process(&req, &Device::Cpu).unwrap_err();
    assert!(
        matches!(err, ProcessorError::MixedOutputSizes { .. }),
        "{err}"
    );

    let err = proc.process(&request(vec![]), &Device::Cpu).unwrap_err();
    assert!(matches!(err, ProcessorError::EmptyRequest), "{err}");
    Ok(())
}

#[test]
fn tiny_and_degenerate_images() -> Result<()> {
    // Tiny but valid: upscaled so the short side is 16.
    let tiny = RgbImage::from_pixel(3, 5, image::Rgb([10, 20, 30]));
    let out = preprocess_rgb(&tiny, 1024)?;
    assert_eq!((out.width(), out.height()), (16, 16)); // 3x5 -> 16x27 -> crop 16x16
    assert!(out.pixels().all(|p| p.0 == [10, 20, 30]));
    // Empty, or so thin that the short side would become 0 pixels.
    for (w, h) in [(0, 10), (10, 0), (1, 5000)] {
        let err = preprocess_rgb(&RgbImage::new(w, h), 1024).unwrap_err();
        assert!(
            matches!(err, ProcessorError::BadImage { .. }),
            "{w}x{h}: {err}"
        );
        assert!(err.to_string().contains(&format!("{w}x{h}")), "{err}");
    }
    let err = preprocess_rgb(&tiny, 15).unwrap_err();
    assert!(matches!(err, ProcessorError::BadMaxImageSize(15)), "{err}");
    Ok(())
}

#[test]
fn image_guidance_is_off_without_images_and_default_negative_prompt_is_used() -> Result<()> {
    let proc = processor()?;
    let out = proc.process(
        &request(vec![InstructionInput::new("a cat", vec![])]),
        &Device::Cpu,
    )?;
    assert_eq!(out.num_branches, 2);
    let mut with_default = request(vec![InstructionInput::new("a cat", vec![])]);
    with_default.negative_prompt = Some(DEFAULT_NEGATIVE_PROMPT.to_string());
    let explicit = proc.process(&with_default, &Device::Cpu)?;
    assert_exact(
        "uncond ids",
        &out.batches[1].collated.input_ids,
        &explicit.batches[1].collated.input_ids,
        DType::I64,
    )?;
    Ok(())
}

#[test]
fn gather_orders_items_by_span_and_reports_missing_ones() -> Result<()> {
    let proc = processor()?;
    let mut req = request(vec![InstructionInput::new(
        "<img><|image_2|></img> and <img><|image_1|></img> and <img><|image_2|></img>",
        vec![(16, 16), (16, 32)],
    )]);
    req.separate_cfg = false;
    let out = proc.process(&req, &Device::Cpu)?;
    let batch = &out.batches[0];
    // Rows: cond (images 2, 1, 2), uncond (none), img_cond (images 1, 2).
    assert_eq!(
        batch.gather(&[vec!["one", "two"]])?,
        vec!["two", "one", "two", "one", "two"]
    );
    let rows: Vec<usize> = batch.collated.image_spans.iter().map(|s| s.row).collect();
    assert_eq!(rows, vec![0, 0, 0, 2, 2]);
    let err = batch.gather(&[vec!["one"]]).unwrap_err();
    assert!(
        matches!(
            err,
            ProcessorError::MissingImage {
                prompt: 0,
                image: 1
            }
        ),
        "{err}"
    );
    Ok(())
}

#[test]
fn missing_tokenizer_file_is_a_clear_error() {
    let err =
        Processor::from_tokenizer_file(fixtures().join("no-such-tokenizer.json")).unwrap_err();
    assert!(matches!(err, ProcessorError::TokenizerLoad { .. }), "{err}");
    assert!(err.to_string().contains("no-such-tokenizer.json"), "{err}");
}
