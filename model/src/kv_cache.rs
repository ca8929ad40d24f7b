//! The condition-token KV cache of OmniGen's sampler (spec §7.3).
//!
//! Per layer it keeps only the keys/values (after RoPE) of the condition tokens, i.e. everything before
//! the time token. Step 0 fills it; later steps query only `[time token, image tokens]` against
//! `[cached condition K/V, new K/V]`, which equals full recomputation because condition tokens never
//! attend to time/image tokens.

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

/// Cached condition keys and values of every layer, for one CFG branch batch.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    /// Where the entries are kept when they are offloaded (`offload_kv_cache`); `None`: on the device
    /// that computed them.
    host: Option<Device>,
}

impl KvCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache whose entries are kept in host memory and copied to the device layer by layer as
    /// they are read ([`crate::offload`]).
    pub fn offloaded() -> Self {
        Self {
            layers: Vec::new(),
            host: Some(crate::offload::host()),
        }
    }

    /// Whether the entries are kept in host memory.
    pub fn is_offloaded(&self) -> bool {
        self.host.is_some()
    }

    /// Stores layer `i`'s condition K/V (moved to host memory when the cache is offloaded).
    pub(crate) fn store(&mut self, i: usize, kv: (Tensor, Tensor)) -> Result<()> {
        let kv = match &self.host {
            Some(host) => (kv.0.to_device(host)?, kv.1.to_device(host)?),
            None => kv,
        };
        let slot = self
            .layers
            .get_mut(i)
            .ok_or_else(|| Error::Input(format!("KV cache has no slot for layer {i}")))?;
        *slot = Some(kv);
        Ok(())
    }

    /// Layer `i`'s condition K/V on `device`.
    pub(crate) fn layer_on(&self, i: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        let (k, v) = self.layers.get(i).and_then(|l| l.as_ref()).ok_or_else(|| {
            Error::Input(format!(
                "KV cache has no entry for layer {i}: fill it first"
            ))
        })?;
        Ok((k.to_device(device)?, v.to_device(device)?))
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
