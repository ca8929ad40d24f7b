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

omnigen_plugin_sdk::plugin!(name: "hostile", version: "0.1.0", nodes: [
    Spin, Hog, Recurse, Panic, Trap, BadSize, OverflowDims, Oversized, WrongType, MissingOutput,
    ExtraOutput, DuplicateOutput, ReadFile, Connect, ReadEnv, ReadClock, LogSpam, IgnoreCancel, Fails,
]);
