/*
 * memmove/memcpy for the static (musl) build of logcatch; see src/fastcopy.rs for why.
 *
 * musl's x86_64 memcpy is `rep movsq` for every size of 8 bytes or more; its start-up cost
 * dominates the ~120-byte copies librdkafka makes for every message (its payload copy, then
 * its write into the request buffer): 12% of the static build's catch-up CPU against 3% for
 * glibc's (perf). This copies with SSE2 (baseline on every x86_64, so any legacy host runs it):
 * up to 128 bytes, everything is loaded before anything is stored (so any overlap is safe);
 * longer, 64 bytes a step, forward or backward as the overlap requires, with the first and
 * last bytes loaded before the loop and stored after it.
 *
 * Compiled with -ffreestanding -fno-tree-loop-distribute-patterns, so the compiler cannot turn
 * a loop here back into a call to memcpy. Exported as memcpy and memmove only when
 * LOGCATCH_OVERRIDE_LIBC is defined (the musl build); always as logcatch_memmove (tests).
 */
#include <stddef.h>
#include <stdint.h>
#include <emmintrin.h>

typedef uint64_t __attribute__((may_alias, aligned(1))) u64u;
typedef uint32_t __attribute__((may_alias, aligned(1))) u32u;
typedef uint16_t __attribute__((may_alias, aligned(1))) u16u;
typedef __m128i v16;

static inline v16 ld(const unsigned char *p) { return _mm_loadu_si128((const v16 *)p); }
static inline void st(unsigned char *p, v16 v) { _mm_storeu_si128((v16 *)p, v); }

void *logcatch_memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (n <= 16) {
        if (n >= 8) {
            uint64_t a = *(const u64u *)s, b = *(const u64u *)(s + n - 8);
            *(u64u *)d = a;
            *(u64u *)(d + n - 8) = b;
        } else if (n >= 4) {
            uint32_t a = *(const u32u *)s, b = *(const u32u *)(s + n - 4);
            *(u32u *)d = a;
            *(u32u *)(d + n - 4) = b;
        } else if (n >= 2) {
            uint16_t a = *(const u16u *)s, b = *(const u16u *)(s + n - 2);
            *(u16u *)d = a;
            *(u16u *)(d + n - 2) = b;
        } else if (n == 1) {
            *d = *s;
        }
        return dst;
    }
    if (n <= 32) {
        v16 a = ld(s), b = ld(s + n - 16);
        st(d, a);
        st(d + n - 16, b);
        return dst;
    }
    if (n <= 64) {
        v16 a = ld(s), b = ld(s + 16), c = ld(s + n - 32), e = ld(s + n - 16);
        st(d, a);
        st(d + 16, b);
        st(d + n - 32, c);
        st(d + n - 16, e);
        return dst;
    }
    if (n <= 128) {
        v16 a0 = ld(s), a1 = ld(s + 16), a2 = ld(s + 32), a3 = ld(s + 48);
        v16 b0 = ld(s + n - 64), b1 = ld(s + n - 48), b2 = ld(s + n - 32), b3 = ld(s + n - 16);
        st(d, a0);
        st(d + 16, a1);
        st(d + 32, a2);
        st(d + 48, a3);
        st(d + n - 64, b0);
        st(d + n - 48, b1);
        st(d + n - 32, b2);
        st(d + n - 16, b3);
        return dst;
    }
    if ((uintptr_t)d - (uintptr_t)s >= n) {
        /* Forward: d is below s, or the two do not overlap. Reads stay ahead of writes. */
        v16 head = ld(s);
        v16 t0 = ld(s + n - 64), t1 = ld(s + n - 48), t2 = ld(s + n - 32), t3 = ld(s + n - 16);
        size_t skip = 16 - ((uintptr_t)d & 15); /* 1..16: d + skip is 16-byte aligned */
        unsigned char *dd = d + skip;
        const unsigned char *ss = s + skip;
        size_t left = n - skip;
        while (left > 64) {
            v16 x0 = ld(ss), x1 = ld(ss + 16), x2 = ld(ss + 32), x3 = ld(ss + 48);
            _mm_store_si128((v16 *)dd, x0);
            _mm_store_si128((v16 *)(dd + 16), x1);
            _mm_store_si128((v16 *)(dd + 32), x2);
            _mm_store_si128((v16 *)(dd + 48), x3);
            dd += 64;
            ss += 64;
            left -= 64;
        }
        /* [0, 16) and [n - 64, n) cover what the loop left (left <= 64, skip <= 16). */
        st(d, head);
        st(d + n - 64, t0);
        st(d + n - 48, t1);
        st(d + n - 32, t2);
        st(d + n - 16, t3);
        return dst;
    }
    /* Backward: d is above s and they overlap. Reads stay below writes. */
    v16 h0 = ld(s), h1 = ld(s + 16), h2 = ld(s + 32), h3 = ld(s + 48);
    v16 tail = ld(s + n - 16);
    size_t skip = (uintptr_t)(d + n) & 15; /* d + n - skip is 16-byte aligned */
    if (skip == 0)
        skip = 16;
    unsigned char *de = d + n - skip;
    const unsigned char *se = s + n - skip;
    size_t left = n - skip;
    while (left > 64) {
        de -= 64;
        se -= 64;
        v16 x0 = ld(se), x1 = ld(se + 16), x2 = ld(se + 32), x3 = ld(se + 48);
        _mm_store_si128((v16 *)de, x0);
        _mm_store_si128((v16 *)(de + 16), x1);
        _mm_store_si128((v16 *)(de + 32), x2);
        _mm_store_si128((v16 *)(de + 48), x3);
        left -= 64;
    }
    /* [0, 64) and [n - 16, n) cover what the loop left (left <= 64, skip <= 16). */
    st(d, h0);
    st(d + 16, h1);
    st(d + 32, h2);
    st(d + 48, h3);
    st(d + n - 16, tail);
    return dst;
}

#ifdef LOGCATCH_OVERRIDE_LIBC
void *memmove(void *dst, const void *src, size_t n) __attribute__((alias("logcatch_memmove")));
void *memcpy(void *restrict dst, const void *restrict src, size_t n) __attribute__((alias("logcatch_memmove")));
#endif
