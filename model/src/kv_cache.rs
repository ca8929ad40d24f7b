//! The condition-token KV cache of OmniGen's sampler (spec §7.3).
//!
//! Per layer it keeps only the keys/values (after RoPE) of the condition tokens, i.e. everything before
//! the time token. Step 0 fills it; later steps query only `[time token, image tokens]` against
//! `[cached condition K/V, new K/V]`, which equals full recomputation because condition tokens never
//! attend to time/image tokens.

use candle_core::Tensor;

/// Cached condition keys and values of every layer, for one CFG branch batch.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether step 0 has filled it.
    pub fn is_filled(&self) -> bool {
        !self.layers.is_empty() && self.layers.iter().all(|l| l.is_some())
    }

    /// Number of cached condition tokens (0 when empty).
    pub fn cached_len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims().get(2).copied().unwrap_or(0))
    }
}

/// How one forward call uses the cache.
pub(crate) enum CacheUse<'a> {
    /// No cache: full sequence, full mask.
    Off,
    /// First step: run the full sequence and store the condition K/V (all but the last `tail` tokens).
    /// With `attend_cropped` (the reference's `use_kv_cache=True` behaviour) the attention of this step
    /// also only sees the stored condition keys.
    Fill {
        cache: &'a mut KvCache,
        tail: usize,
        attend_cropped: bool,
    },
    /// Later steps: the input holds only the last `tail` tokens; prepend the cached K/V.
    Read(&'a KvCache),
}
