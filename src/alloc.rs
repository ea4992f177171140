//! The allocator's settings that logcatch changes: one per thread, and when freed pages go back.
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

/// Runs jemalloc's decay now (`arena.<all>.decay`): the pages of memory freed longer ago than
/// its `dirty_decay_ms` (10 s) go back to the system. jemalloc decays only as it allocates (no
/// background thread here), so an agent gone idle kept what its busy moments had freed: the
/// 1,000 tails that start, read and park leave pages nobody allocates from again (1,000 idle
/// files: 28.2 MiB resident without it, 22.8 MiB with it, 22.1 MiB with every free returned at
/// once, `dirty_decay_ms:0`, which a busy agent would pay for in page faults). Called every
/// `metrics.interval` by the metrics thread, which wakes then anyway; recent frees are kept for
/// reuse, so a busy agent loses nothing by it. Does nothing where jemalloc is not the allocator.
pub fn decay_freed_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a NUL-terminated mallctl name of a command that reads and writes nothing
        // (all pointers null, length 0); 4096 is MALLCTL_ARENAS_ALL, every arena.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctl(
                c"arena.4096.decay".as_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            log::debug!("alloc: could not run the allocator's decay (mallctl error {rc})");
        }
    }
}
