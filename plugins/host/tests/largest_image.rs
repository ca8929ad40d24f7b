//! The largest legal image (64 Mi pixels) crosses the boundary in both directions: the copy
//! budget and the memory limits let it through, and the host keeps it compact.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use omnigen_engine::{
    BoxFuture, EventSink, Executor, ExecutorConfig, InputSpec, Inputs, NodeContext, NodeError,
    NodeOutput, NodeSchema, NodeType, PromptRequest, Registry, RunOptions,
};
use omnigen_plugins::{
    CallControl, LimitRequest, Limits, PixelFormat, PixelImage, PluginConfig, PluginRuntime,
    PluginValue,
};
use serde_json::{json, Map};

/// Room for one largest image in guest memory, plus the guest's own 16 MiB.
fn big_config() -> PluginConfig {
    PluginConfig {
        default_limits: Limits {
            memory_bytes: 320 << 20,
            timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        max_memory_bytes: 512 << 20,
        max_concurrent_calls: 2,
        ..PluginConfig::default()
    }
}

#[test]
fn an_8192_square_rgba_image_goes_in_and_comes_back_out() {
    let runtime = PluginRuntime::new(big_config()).expect("runtime");
    let probe = common::load_with(
        &runtime,
        "probe",
        "omnigen_plugin_probe",
        LimitRequest::default(),
    );
    let side = 8192u32;
    assert_eq!(
        u64::from(side) * u64::from(side),
        probe.limits().max_output_pixels
    );
    let mut data = vec![0x5a; (side * side * 4) as usize];
    data[0] = 1;
    *data.last_mut().unwrap() = 2;
    let image = PixelImage {
        width: side,
        height: side,
        format: PixelFormat::Rgba8,
        data,
    };
    let out = probe
        .run(
            "identity",
            vec![("image".into(), PluginValue::Image(image.clone()))],
            &Map::new(),
            &CallControl::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.values,
        vec![("image".to_string(), PluginValue::Image(image))]
    );
}

/// Reports how the image it receives is held: dims, whether as bytes, and its size in memory.
/// `(batch, height, width, channels, held as bytes, size in memory)` of the image seen.
type Seen = Arc<Mutex<Option<(usize, usize, usize, usize, bool, usize)>>>;

struct Inspect(Seen);
impl NodeType for Inspect {
    fn schema(&self) -> NodeSchema {
        NodeSchema::new("TestInspect")
            .required(InputSpec::socket("images", "IMAGE"))
            .output_node()
    }
    fn run<'a>(
        &'a self,
        inputs: Inputs,
        _ctx: NodeContext,
    ) -> BoxFuture<'a, Result<NodeOutput, NodeError>> {
        Box::pin(async move {
            let image = inputs.get_image("images")?;
            let (b, h, w, c) = image.dims();
            *self.0.lock().unwrap() =
                Some((b, h, w, c, image.bytes().is_some(), image.size_bytes()));
            Ok(NodeOutput::ui(json!({})))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_gray_output_stays_one_byte_per_pixel_in_the_engine() {
    let plugins = tempfile::tempdir().unwrap();
    common::install_into(plugins.path(), "hostile", "omnigen_plugin_hostile");
    let registry = Arc::new(Registry::new());
    let seen = Arc::new(Mutex::new(None));
    registry.register(Inspect(Arc::clone(&seen)));
    let (_host, report) =
        omnigen_plugins::register_dir(&registry, plugins.path(), &big_config()).unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let executor = Executor::new(registry, ExecutorConfig::default());
    let graph = json!({
        "1": {"class_type": "hostile/huge_gray", "inputs": {}},
        "2": {"class_type": "TestInspect", "inputs": {"images": ["1", 0]}}
    });
    let request = PromptRequest::from_json(json!({ "prompt": graph })).unwrap();
    let report = executor
        .run(&request, RunOptions::new(EventSink::none()))
        .await
        .unwrap();
    assert!(report.is_success(), "{:?}", report.status);
    // Shown as RGB for the nodes downstream, held as the plugin's 64 MiB of grey: not 768 MiB of floats.
    assert_eq!(
        *seen.lock().unwrap(),
        Some((1, 8192, 8192, 3, true, 64 << 20))
    );
}
