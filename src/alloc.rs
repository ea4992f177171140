//! The allocator's one setting that logcatch changes per thread.
//!
//! Exists because jemalloc (the allocator on Linux, see Cargo.toml) gives every thread a cache of
//! freed blocks, and logcatch runs a thread per file: with 1,000 idle files the agent's RSS was
//! 86 MiB instead of glibc malloc's 44 MiB (measured, `MALLOC_CONF=tcache:false` brought it back
//! to 45 MiB). A tail thread allocates a batch now and then and its blocks are freed by the
//! sending thread, so its cache only holds memory; the sender, the delivery-report thread and
//! librdkafka's broker threads, which allocate per message, keep theirs.

/// Turns off the calling thread's allocation cache (jemalloc's `thread.tcache.enabled`). Does
/// nothing where jemalloc is not the allocator.
pub fn no_thread_cache() {
    #[cfg(target_os = "linux")]
    {
        let off = false;
        // SAFETY: the name is a NUL-terminated mallctl name whose value is a `bool`; `newp`
        // points to a live `bool` of the size given, and nothing is read back (`oldp` null).
        // mallctl only changes the calling thread's cache.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"thread.tcache.enabled".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                (&off as *const bool).cast_mut().cast(),
                std::mem::size_of::<bool>(),
            )
        };
        if rc != 0 {
            log::debug!("alloc: could not turn off this thread's cache (mallctl error {rc})");
        }
    }
}
