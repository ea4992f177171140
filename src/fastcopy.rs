//! The static build's `memcpy` and `memmove`, written for small copies.
//!
//! Exists because the static (musl) release must be as fast as the glibc build, and after
//! jemalloc took care of the allocator, perf of a catch-up still put 12% of the static build's
//! CPU in musl's `memcpy` against 3% for glibc's: musl copies with `rep movsq` whatever the
//! size, and librdkafka copies every ~120-byte message twice (into the message, then into the
//! request buffer). No well-kept crate replaces libc's `memcpy`, so `memmove.c` beside this file
//! does, with SSE2 (on every x86_64), in the musl build only; the glibc build keeps glibc's.
//! Everything here is C; this module declares it and tests it against `copy_within` for every
//! length up to 300 at every overlap from -80 to +80 bytes, and on random larger cases.

#[cfg(logcatch_fastcopy)]
extern "C" {
    /// `memmove` semantics: copies `n` bytes from `src` to `dst`, which may overlap.
    pub fn logcatch_memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8;
}

#[cfg(all(test, logcatch_fastcopy))]
mod tests {
    use super::logcatch_memmove;
    use proptest::prelude::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Copies buf[src..src+n] to buf[dst..] with ours and with the standard library's, and
    /// compares the whole buffers (nothing outside the destination may change).
    fn check(len: usize, src: usize, dst: usize, n: usize) {
        let mut ours = pattern(len);
        let mut model = ours.clone();
        model.copy_within(src..src + n, dst);
        // SAFETY: both ranges lie inside `ours` (the callers keep src + n and dst + n <= len);
        // overlap is what memmove allows.
        let ret = unsafe { logcatch_memmove(ours.as_mut_ptr().add(dst), ours.as_ptr().add(src), n) };
        assert_eq!(ret, unsafe { ours.as_mut_ptr().add(dst) }, "returns dst");
        assert!(ours == model, "len {n}, src {src}, dst {dst}");
    }

    #[test]
    fn every_length_to_300_at_every_overlap_within_80_bytes() {
        for n in 0..=300 {
            for shift in -80i64..=80 {
                let (src, dst) = if shift >= 0 { (20, 20 + shift as usize) } else { (100, (100 + shift) as usize) };
                check(512, src, dst, n);
            }
        }
    }

    #[test]
    fn every_alignment_of_both_ends() {
        for n in [65, 100, 129, 200, 1000, 4096 + 7] {
            for src in 0..16 {
                for dst in 0..16 {
                    check(8192, src + 1, dst + 2000, n);
                    check(8192, dst + 2000, src + 1, n);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn random_copies_match_copy_within(n in 0usize..20_000, src in 0usize..5_000, dst in 0usize..5_000) {
            check(30_000, src, dst, n);
        }
    }
}
