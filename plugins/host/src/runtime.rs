//! The wasmtime engine shared by all plugins: configuration, the epoch ticker, the linker.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::v0_1::Plugin;
use crate::limits::PluginConfig;
use crate::store::RunState;

/// How often the epoch advances: the granularity of timeouts and cancellation.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Wasm stack limit: deep recursion traps with a stack overflow instead of exhausting the host.
const MAX_WASM_STACK: usize = 1 << 20;

/// One engine (compiled code, instance pool, epoch clock) shared by every plugin of a host.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<RunState>,
    config: PluginConfig,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn engine_config(config: &PluginConfig) -> Config {
    let slots = config.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 16)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .max_memories_per_component(2)
        .max_core_instances_per_component(16)
        .max_tables_per_component(8)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        // Keep faulted-in pages between calls: a fresh instance per call then costs
        // microseconds instead of re-faulting megabytes.
        .linear_memory_keep_resident(16 << 20)
        .table_keep_resident(64 << 10)
        // Reset only the pages a call dirtied (Linux >= 6.7), not all 16 MiB kept resident:
        // a 4 MiB image round trip then zeroes 4 MiB instead of 16.
        .pagemap_scan(Enabled::Auto);

    let mut c = Config::new();
    c.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

impl PluginRuntime {
    /// Creates the engine and starts its epoch ticker (a thread that ends with the engine).
    pub fn new(config: PluginConfig) -> Result<Self, String> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| format!("cannot start wasmtime: {e:#}"))?;
        let mut linker = Linker::<RunState>::new(&engine);
        Plugin::add_to_linker::<RunState, wasmtime::component::HasSelf<RunState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| format!("cannot link the host interface: {e:#}"))?;
        let weak = engine.weak();
        thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config,
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The host configuration.
    pub fn config(&self) -> &PluginConfig {
        &self.inner.config
    }

    /// A linker with the host interface, plus trapping stubs for every other import of
    /// `component` (WASI and anything else): such a plugin loads, and fails with a clear error
    /// only if it actually calls something the sandbox does not provide.
    pub(crate) fn linker_for(&self, component: &Component) -> wasmtime::Result<Linker<RunState>> {
        let mut linker = self.inner.linker.clone();
        linker.define_unknown_imports_as_traps(component)?;
        Ok(linker)
    }

    /// A stable name for this engine's compiled-code format, used to key the disk cache.
    pub(crate) fn compatibility_key(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}
