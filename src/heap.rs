//! How the process's heap gives memory back: glibc's allocator keeps one arena per thread
//! that allocates (up to eight per core) and keeps freed pages, so a daemon that opened a big
//! store (sled rebuilds its page table) or fired a big timer round stays at that size while
//! idle. Only on Linux with glibc; elsewhere these do nothing.

/// Caps glibc's malloc arenas at two. Call first thing in `main`, before any thread starts:
/// tokio's workers, its blocking pool and sled's threads would otherwise each get an arena
/// whose freed pages stay resident. Measured on a store of 98,109 alerts: 137 MiB idle with
/// the default, 119 MiB with two (BENCHMARKS.md, "Memory").
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets an allocator parameter; M_ARENA_MAX takes any positive
    // value, and a refusal (return 0) leaves glibc's default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed heap pages to the system (`malloc_trim`). Call after work that freed a lot
/// at once: the start (store recovery, the desk index), a big timer round. It walks the
/// whole heap (milliseconds on a large one), so async code runs it on the blocking pool:
/// `release_free_off_runtime`.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` walks the allocator's own free lists under its locks; it is safe
    // to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `release_free` on tokio's blocking pool, so no runtime worker (which answers `/healthz`
/// and the desk's callbacks) waits for it.
pub async fn release_free_off_runtime() {
    if let Err(e) = tokio::task::spawn_blocking(release_free).await {
        tracing::debug!(error = %e, "heap release did not run");
    }
}
