//! Process-wide allocator settings for a host that moves megabyte-sized buffers around.
//!
//! glibc serves allocations above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with fresh
//! `mmap`s and gives freed heap tops back to the kernel above its trim threshold. A host that repeatedly
//! allocates a few MiB (an image handed to a plugin and back, a latent, a tensor) then pays a page fault per
//! 4 KiB page on every allocation: measured on a 1024×1024 RGBA plugin round trip, 2,016 faults and 5.4 ms per
//! call with glibc's defaults, none and 1.6 ms with the settings below.
//!
//! A job of the binary, not of the dataflow engine. plugins/host/benches/plugin_overhead.rs compiles this
//! same file (`#[path]`), so its figures are taken under the binary's settings.

/// Keeps allocations up to 32 MiB (glibc's largest allowed threshold) on the heap and lets up to 256 MiB
/// of freed heap stay mapped, so that buffers of a few MiB are reused instead of re-faulted.
///
/// Call once at the start of `main`, before threads start. Only glibc is tuned; elsewhere this does
/// nothing. Returns whether the settings were applied.
pub fn tune_for_large_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is called before other threads
        // allocate (documented precondition of this function) and with valid option constants.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_settings() {
        assert!(super::tune_for_large_buffers());
    }
}
