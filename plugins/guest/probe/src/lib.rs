//! Test fixture `probe`: well-behaved nodes for value round-trip tests and benchmarks.

use omnigen_plugin_sdk::prelude::*;

/// Returns its image unchanged: measures the cost of moving an image in and out.
pub struct Identity;
impl Node for Identity {
    const ID: &'static str = "identity";
    fn spec() -> NodeSpec {
        NodeSpec::new("Identity")
            .input(Port::image("image"))
            .output(Port::image("image"))
    }
    fn run(_ctx: &Context, mut inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        Ok(Outputs::new().image("image", inputs.take_image("image")?))
    }
}

/// Does nothing: measures the fixed cost of a call.
pub struct Nop;
impl Node for Nop {
    const ID: &'static str = "nop";
    fn spec() -> NodeSpec {
        NodeSpec::new("Nop").output(Port::integer("value"))
    }
    fn run(_ctx: &Context, _inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        Ok(Outputs::new().integer("value", 42))
    }
}

/// Inverts RGB in place with a constant channel count, like the native baseline in the benchmark.
pub struct InvertRgba;
impl Node for InvertRgba {
    const ID: &'static str = "invert_rgba";
    fn spec() -> NodeSpec {
        NodeSpec::new("Invert RGBA")
            .input(Port::image("image"))
            .output(Port::image("image"))
    }
    fn run(_ctx: &Context, mut inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
        let mut image = inputs.take_image("image")?;
        for px in image.data.chunks_exact_mut(4) {
            px[0] = 255 - px[0];
            px[1] = 255 - px[1];
            px[2] = 255 - px[2];
        }
        Ok(Outputs::new().image("image", image))
    }
}

/// Passes every kind of value through, and reports its params and progress answer.
pub struct Echo;
impl Node for Echo {
    const ID: &'static str = "echo";
    fn spec() -> NodeSpec {
        NodeSpec::new("Echo")
            .description("Returns each connected input on the output of the same name.")
            .input(Port::image("image").optional())
            .input(Port::mask("mask").optional())
            .input(Port::text("text").optional())
            .input(Port::integer("integer").optional())
            .input(Port::number("number").optional())
            .input(Port::boolean("boolean").optional())
            .input(Port::json("json").optional())
            .output(Port::image("image"))
            .output(Port::mask("mask"))
            .output(Port::text("text"))
            .output(Port::integer("integer"))
            .output(Port::number("number"))
            .output(Port::boolean("boolean"))
            .output(Port::json("json"))
            .string_param("label", "echo", false)
            .int_param("count", 1, 0, 100)
    }
    fn run(ctx: &Context, mut inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        ctx.log(
            LogLevel::Info,
            &format!("echo label={}", params.str("label")?),
        );
        let go_on = ctx.progress(0.5);
        let image = inputs.take_image_opt("image")?.unwrap_or(Image {
            width: 1,
            height: 1,
            format: PixelFormat::Gray8,
            data: vec![0],
        });
        let mask = inputs.take_mask_opt("mask")?.unwrap_or(Mask {
            width: 1,
            height: 1,
            data: vec![0],
        });
        let text = inputs
            .take_text_opt("text")?
            .unwrap_or_else(|| params.str("label").unwrap_or("").to_string());
        Ok(Outputs::new()
            .image("image", image)
            .mask("mask", mask)
            .text("text", text)
            .integer(
                "integer",
                inputs
                    .take_integer_opt("integer")?
                    .unwrap_or(params.int("count")?),
            )
            .number("number", inputs.take_number_opt("number")?.unwrap_or(0.5))
            .boolean(
                "boolean",
                inputs.take_boolean_opt("boolean")?.unwrap_or(go_on),
            )
            .json(
                "json",
                inputs
                    .take_json_opt("json")?
                    .unwrap_or_else(|| "{}".to_string()),
            ))
    }
}

/// Grows linear memory by `pages` 64 KiB pages outside the allocator, counts the non-zero bytes it
/// finds there, then scribbles over them. A fresh instance must always find zeros: the host's
/// memory reuse must never show one call's bytes to the next.
pub struct Leftovers;
impl Node for Leftovers {
    const ID: &'static str = "leftovers";
    fn spec() -> NodeSpec {
        NodeSpec::new("Leftovers")
            .output(Port::integer("nonzero"))
            .int_param("pages", 64, 1, 1024)
    }
    fn run(_ctx: &Context, _inputs: Inputs, params: &Params) -> Result<Outputs, NodeError> {
        let pages = params.int("pages")? as usize;
        let before = core::arch::wasm32::memory_grow(0, pages);
        if before == usize::MAX {
            return Err(NodeError::Failed("memory.grow refused".into()));
        }
        let start = (before * 65536) as *mut u8;
        let mut nonzero = 0i64;
        for i in 0..pages * 65536 {
            // SAFETY: the pages were just added by memory.grow and belong to no allocation; volatile
            // so the compiler cannot assume fresh memory is zero.
            unsafe {
                let p = start.add(i);
                if core::ptr::read_volatile(p) != 0 {
                    nonzero += 1;
                }
                core::ptr::write_volatile(p, 0xAB);
            }
        }
        Ok(Outputs::new().integer("nonzero", nonzero))
    }
}

omnigen_plugin_sdk::plugin!(name: "probe", version: "0.1.0", nodes: [Identity, Nop, InvertRgba, Echo, Leftovers]);
