//! Test fixture `hostile`: every node misbehaves in its own way. The host's test suite runs each
//! one and checks that the host reports a clear error and keeps working.

use omnigen_plugin_sdk::prelude::*;

/// Declares a node with one optional image input, a single `image` output and a body.
macro_rules! hostile_node {
    ($name:ident, $id:literal, |$ctx:ident, $inputs:ident| $body:block) => {
        /// A misbehaving node (see the id).
        pub struct $name;
        impl Node for $name {
            const ID: &'static str = $id;
            fn spec() -> NodeSpec {
                NodeSpec::new($id)
                    .category("testing/hostile")
                    .input(Port::image("image").optional())
                    .output(Port::image("image"))
            }
            #[allow(unused_variables, unused_mut, unreachable_code)]
            fn run(
                $ctx: &Context,
                mut $inputs: Inputs,
                _params: &Params,
            ) -> Result<Outputs, NodeError> {
                $body
            }
        }
    };
}

fn tiny() -> Image {
    Image {
        width: 1,
        height: 1,
        format: PixelFormat::Rgba8,
        data: vec![1, 2, 3, 4],
    }
}

hostile_node!(Spin, "spin", |ctx, inputs| {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
});

hostile_node!(Hog, "hog", |ctx, inputs| {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![7u8; 16 << 20]);
        std::hint::black_box(&hoard);
    }
});

/// Recursion on scalars only, so every frame lives on the wasm (native) stack rather than the
/// shadow stack in linear memory: this exercises the host's stack limit.
#[inline(never)]
#[allow(unconditional_recursion)]
fn dive(depth: u64) -> u64 {
    dive(depth.wrapping_add(1)).wrapping_mul(3) ^ depth
}

hostile_node!(Recurse, "recurse", |ctx, inputs| {
    let n = dive(std::hint::black_box(0));
    Ok(Outputs::new().integer("image", n as i64))
});

hostile_node!(Panic, "panic", |ctx, inputs| {
    panic!("deliberate panic in a hostile plugin");
});

hostile_node!(Trap, "trap", |ctx, inputs| {
    core::arch::wasm32::unreachable();
});

hostile_node!(BadSize, "bad_size", |ctx, inputs| {
    let image = Image {
        width: 1024,
        height: 1024,
        format: PixelFormat::Rgba8,
        data: vec![0; 10],
    };
    Ok(Outputs::new().image("image", image))
});

hostile_node!(OverflowDims, "overflow_dims", |ctx, inputs| {
    let image = Image {
        width: u32::MAX,
        height: u32::MAX,
        format: PixelFormat::Rgba8,
        data: vec![0; 16],
    };
    Ok(Outputs::new().image("image", image))
});

hostile_node!(Oversized, "oversized", |ctx, inputs| {
    // 20000 x 20000 gray: 400 MB claimed and really allocated (if the memory limit allows).
    let side = 20_000u32;
    let image = Image {
        width: side,
        height: side,
        format: PixelFormat::Gray8,
        data: vec![0; (side * side) as usize],
    };
    Ok(Outputs::new().image("image", image))
});

hostile_node!(WrongType, "wrong_type", |ctx, inputs| {
    Ok(Outputs::new().text("image", "not an image"))
});

hostile_node!(MissingOutput, "missing_output", |ctx, inputs| {
    Ok(Outputs::new())
});

hostile_node!(ExtraOutput, "extra_output", |ctx, inputs| {
    Ok(Outputs::new()
        .image("image", tiny())
        .image("surprise", tiny()))
});

hostile_node!(DuplicateOutput, "duplicate_output", |ctx, inputs| {
    Ok(Outputs::new().image("image", tiny()).image("image", tiny()))
});

hostile_node!(ReadFile, "read_file", |ctx, inputs| {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_else(|e| format!("error: {e}"));
    Ok(Outputs::new().text("image", text))
});

hostile_node!(Connect, "connect", |ctx, inputs| {
    let result = std::net::TcpStream::connect("127.0.0.1:80");
    Ok(Outputs::new().text("image", format!("{result:?}")))
});

hostile_node!(ReadEnv, "read_env", |ctx, inputs| {
    let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    Ok(Outputs::new().text("image", vars.join("\n")))
});

hostile_node!(ReadClock, "read_clock", |ctx, inputs| {
    let now = std::time::SystemTime::now();
    Ok(Outputs::new().text("image", format!("{now:?}")))
});

hostile_node!(LogSpam, "log_spam", |ctx, inputs| {
    let line = "spam ".repeat(2000);
    loop {
        ctx.log(LogLevel::Info, &line);
    }
});

hostile_node!(IgnoreCancel, "wait_for_cancel", |ctx, inputs| {
    // Cooperative: polls progress until the host says stop.
    loop {
        if !ctx.progress(0.5) {
            return Err(NodeError::Cancelled);
        }
    }
});

hostile_node!(Fails, "fails", |ctx, inputs| {
    Err(NodeError::Failed("this node always fails politely".into()))
});

hostile_node!(LogHuge, "log_huge", |ctx, inputs| {
    // A few huge lines: the host must keep a small copy of each, not the plugin's allocation.
    let line = "x".repeat(8 << 20);
    for _ in 0..40 {
        ctx.log(LogLevel::Info, &line);
    }
    Ok(Outputs::new().image("image", tiny()))
});

hostile_node!(ProgressFlood, "progress_flood", |ctx, inputs| {
    // Far more progress reports than anyone can read; the engine must coalesce them.
    let steps = 100_000u32;
    for i in 0..steps {
        if !ctx.progress(i as f32 / steps as f32) {
            return Err(NodeError::Cancelled);
        }
    }
    ctx.checkpoint(1.0)?;
    Ok(Outputs::new().image("image", tiny()))
});

/// Terminal escapes: set the window title, clear the screen, fake a success line.
const ESCAPES: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2J\r\n\u{1b}[32m✓ all done\u{1b}[0m";

hostile_node!(FailHuge, "fail_huge", |ctx, inputs| {
    let mut message = ESCAPES.repeat(4);
    message.push_str(&"y".repeat(16 << 20));
    Err(NodeError::Failed(message))
});

hostile_node!(FailEscapes, "fail_escapes", |ctx, inputs| {
    ctx.log(LogLevel::Error, ESCAPES);
    Err(NodeError::InvalidInput(ESCAPES.to_string()))
});

hostile_node!(BadOutputName, "bad_output_name", |ctx, inputs| {
    let name = format!("{ESCAPES}{}", "z".repeat(1 << 20));
    Ok(Outputs::new().image(&name, tiny()))
});

hostile_node!(BigText, "big_text", |ctx, inputs| {
    // 24 MiB of text on an image port: over the text limit, and over a small copy budget.
    Ok(Outputs::new().text("image", "t".repeat(24 << 20)))
});

hostile_node!(HugeGray, "huge_gray", |ctx, inputs| {
    // The largest legal gray image: 8192 x 8192 = 64 Mi pixels, exactly the host's limit.
    let side = 8192u32;
    let image = Image {
        width: side,
        height: side,
        format: PixelFormat::Gray8,
        data: vec![128; (side * side) as usize],
    };
    Ok(Outputs::new().image("image", image))
});

omnigen_plugin_sdk::plugin!(name: "hostile", version: "0.1.0", nodes: [
    Spin, Hog, Recurse, Panic, Trap, BadSize, OverflowDims, Oversized, WrongType, MissingOutput,
    ExtraOutput, DuplicateOutput, ReadFile, Connect, ReadEnv, ReadClock, LogSpam, IgnoreCancel, Fails,
    LogHuge, ProgressFlood, FailHuge, FailEscapes, BadOutputName, BigText, HugeGray,
]);
