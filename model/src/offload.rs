//! Offload (the official pipeline's `offload_model` and `offload_kv_cache`): the decoder layers' weights
//! and the condition KV cache stay in host memory, and each layer's share is copied to the compute device
//! just before that layer runs. The copy of layer `i + 1` is made on a second thread while layer `i`
//! computes, so at most two layers' weights are on the device at once and the copies overlap the work.
//!
//! The numbers are unchanged: a copy is bit-exact, and each layer runs the same kernels on the same device
//! as without offload.

use std::sync::mpsc;

use candle_core::Device;

use crate::error::{Error, Result};

/// Where offloaded tensors wait between uses.
pub(crate) fn host() -> Device {
    Device::Cpu
}

/// Calls `consume(i, fetch(i))` for `i` in `0..n`, in order. With `prefetch`, `fetch(i + 1)` runs on a
/// helper thread while `consume(i, …)` runs (the helper waits until item `i + 1` is taken before it
/// fetches `i + 2`: two items alive at most). The first error, from either side, ends the walk.
pub(crate) fn walk<T: Send>(
    n: usize,
    prefetch: bool,
    fetch: impl Fn(usize) -> Result<T> + Sync,
    mut consume: impl FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    if !prefetch {
        for i in 0..n {
            consume(i, fetch(i)?)?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        // A rendezvous channel: the helper's send blocks until the consumer takes the item.
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(0);
        let fetch = &fetch;
        scope.spawn(move || {
            for i in 0..n {
                let item = fetch(i);
                let failed = item.is_err();
                // A closed channel means the consumer stopped early: nothing more is wanted.
                if tx.send(item).is_err() || failed {
                    return;
                }
            }
        });
        for i in 0..n {
            let item = rx.recv().map_err(|_| {
                Error::Input(format!(
                    "offload: the copy of layer {i} was never delivered"
                ))
            })??;
            consume(i, item)?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn items_arrive_in_order_with_or_without_prefetch() -> Result<()> {
        for prefetch in [false, true] {
            let mut seen = Vec::new();
            walk(
                5,
                prefetch,
                |i| Ok(i * 10),
                |i, v| {
                    seen.push((i, v));
                    Ok(())
                },
            )?;
            assert_eq!(seen, [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)]);
        }
        Ok(())
    }

    #[test]
    fn prefetch_keeps_at_most_two_items_alive() -> Result<()> {
        // `alive` counts fetched items not yet consumed, plus the one being consumed.
        let alive = AtomicUsize::new(0);
        let peak = Mutex::new(0);
        walk(
            8,
            true,
            |i| {
                let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
                let mut p = peak.lock().expect("peak");
                *p = (*p).max(now);
                Ok(i)
            },
            |_, _| {
                std::thread::sleep(std::time::Duration::from_millis(5));
                alive.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )?;
        assert_eq!(*peak.lock().expect("peak"), 2);
        Ok(())
    }

    #[test]
    fn an_error_on_either_side_ends_the_walk_with_that_error() {
        let fetch_fails = walk(
            4,
            true,
            |i| {
                if i == 2 {
                    Err(Error::Input("copy of 2 failed".into()))
                } else {
                    Ok(i)
                }
            },
            |_, _| Ok(()),
        );
        assert!(fetch_fails
            .unwrap_err()
            .to_string()
            .contains("copy of 2 failed"));
        let consumed = AtomicUsize::new(0);
        let consume_fails = walk(4, true, Ok, |i, _| {
            consumed.fetch_add(1, Ordering::SeqCst);
            if i == 1 {
                Err(Error::Input("layer 1 failed".into()))
            } else {
                Ok(())
            }
        });
        assert!(consume_fails
            .unwrap_err()
            .to_string()
            .contains("layer 1 failed"));
        assert_eq!(consumed.load(Ordering::SeqCst), 2);
    }
}
