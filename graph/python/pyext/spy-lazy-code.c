/* spy: code and constants that stay zstd-compressed in the executable until the module that needs
   them is imported (spy-relink's "lazy code groups", docs/packages.md).

   The final link places each group's .text, .rodata and .data in output sections of their own
   after .bss with no bytes in the file (the kernel maps zero pages); the file holds them only
   compressed, in .spy.lazy.blob, the last section. Each entry of a group (a module's init
   function in the inittab) goes through a wrapper that spy-relink writes: it inflates the group
   once per process (spy_lazy_load) and then calls the real init function. Nothing outside a
   group reaches into it but through these wrappers: spy-relink checks that against the linker's
   cross-reference table before it links.

   Until then the groups' pages are PROT_NONE (a constructor maps them so: the kernel maps zero
   pages writable, and executable for code): anything that reached them early would fault at once
   instead of running or reading zeros. On import the pages are made writable, filled, and given
   their final protection. Where a policy refuses to make written memory executable (systemd's
   MemoryDenyWriteExecute, prctl's MDWE), the bytes go through a memfd mapped over the same
   addresses instead, which such policies allow. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_initStaticDCtx */
#include <zstd.h>

struct spy_lazy_range {
    uintptr_t start, size;                /* where the bytes go, and how many */
    uintptr_t packed_offset, packed_size; /* their zstd frame in spy_lazy_packed */
    uint32_t group, prot;
};

/* In .spy.lazy.blob, written by spy-relink for each link (no range before the bytes exist). */
extern const struct spy_lazy_range spy_lazy_ranges[];
extern const uintptr_t spy_lazy_range_count;
extern const unsigned char spy_lazy_packed[];

#define SPY_LAZY_PAGE 4096u

static void spy_lazy_say(const char *s) {
    size_t n = strlen(s);
    while (n) {
        ssize_t w = write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void spy_lazy_fail(const char *what, const char *why) {
    spy_lazy_say("spy: cannot load the built-in code of this module: ");
    spy_lazy_say(what);
    spy_lazy_say(": ");
    spy_lazy_say(why);
    spy_lazy_say("\n");
    abort();
}

/* The decoder's context, in .bss: inflating allocates nothing, so an import on a full heap gets
   the MemoryError of its own module rather than an abort here. A frame written with its size
   (spy-lazy-pack) decodes straight into its pages, with no window buffer. */
static unsigned char spy_lazy_dctx_space[256 << 10] __attribute__((aligned(64)));
static ZSTD_DCtx *spy_lazy_dctx;

static int spy_lazy_map_through_memfd(uintptr_t start, size_t len, int prot) {
    int fd = memfd_create("spy-lazy-code", MFD_CLOEXEC);
    if (fd < 0) return -1;
    const unsigned char *p = (const unsigned char *)start;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w <= 0) {
            if (w < 0 && errno == EINTR) continue;
            close(fd);
            return -1;
        }
        p += w;
        left -= (size_t)w;
    }
    void *at = mmap((void *)start, len, prot, MAP_PRIVATE | MAP_FIXED, fd, 0);
    close(fd);
    return at == (void *)start ? 0 : -1;
}

/* One lock for every group: threads (and subinterpreters) import concurrently, and fork() waits
   for an inflation under way (pthread_atfork), so that a child never inherits a half-filled group
   or a lock nobody will release. pthread_once would leave a child whose parent forked mid-way
   waiting for ever. */
static pthread_mutex_t spy_lazy_lock = PTHREAD_MUTEX_INITIALIZER;

static void spy_lazy_before_fork(void) { pthread_mutex_lock(&spy_lazy_lock); }
static void spy_lazy_after_fork(void) { pthread_mutex_unlock(&spy_lazy_lock); }

__attribute__((constructor)) static void spy_lazy_seal(void) {
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (uintptr_t i = 0; i < spy_lazy_range_count; i++) {
        const struct spy_lazy_range *r = &spy_lazy_ranges[i];
        if (r->start < lo) lo = r->start;
        if (r->start + r->size > hi) hi = r->start + r->size;
    }
    if (lo >= hi) return;
    hi = (hi + SPY_LAZY_PAGE - 1) & ~(uintptr_t)(SPY_LAZY_PAGE - 1);
    /* A mapping of our own over the groups' addresses (theirs alone: the blob starts a page after
       them), whatever the kernel made of segments with no file bytes: older kernels map them
       writable and not executable, newer ones writable and executable. */
    if (mmap((void *)lo, hi - lo, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)lo)
        spy_lazy_fail("sealing its pages", strerror(errno));
    if (pthread_atfork(spy_lazy_before_fork, spy_lazy_after_fork, spy_lazy_after_fork))
        spy_lazy_fail("registering its fork handlers", "pthread_atfork failed");
}

static void spy_lazy_inflate(uint32_t group) {
    for (uintptr_t i = 0; i < spy_lazy_range_count; i++) {
        const struct spy_lazy_range *r = &spy_lazy_ranges[i];
        if (r->group != group || r->size == 0) continue;
        /* Ranges start on a page (ALIGN(4096) in the link) and own their pages. */
        uintptr_t start = r->start;
        size_t len = (r->size + SPY_LAZY_PAGE - 1) & ~(uintptr_t)(SPY_LAZY_PAGE - 1);
        if (start % SPY_LAZY_PAGE) spy_lazy_fail("a range", "not on a page boundary");
        if (mprotect((void *)start, len, PROT_READ | PROT_WRITE))
            spy_lazy_fail("making its pages writable", strerror(errno));
#ifdef MADV_POPULATE_WRITE
        /* All the pages at once rather than a fault each: a fifth of a millisecond per 0.7 MB.
           Kernels before 5.14 say EINVAL, and the faults do it. */
        (void)madvise((void *)start, len, MADV_POPULATE_WRITE);
#endif
        if (!spy_lazy_dctx) {
            if (ZSTD_estimateDCtxSize() > sizeof spy_lazy_dctx_space) spy_lazy_fail("inflating", "no room for zstd's context");
            spy_lazy_dctx = ZSTD_initStaticDCtx(spy_lazy_dctx_space, sizeof spy_lazy_dctx_space);
            if (!spy_lazy_dctx) spy_lazy_fail("inflating", "zstd's context does not fit");
        }
        size_t n = ZSTD_decompressDCtx(spy_lazy_dctx, (void *)start, r->size, spy_lazy_packed + r->packed_offset,
                                       r->packed_size);
        if (ZSTD_isError(n)) spy_lazy_fail("inflating", ZSTD_getErrorName(n));
        if (n != r->size) spy_lazy_fail("inflating", "the frame is not the range's size");
        if (mprotect((void *)start, len, (int)r->prot) == 0) continue;
        int refused = errno;
        if (!(r->prot & PROT_EXEC)) spy_lazy_fail("giving its pages their protection", strerror(refused));
        if (spy_lazy_map_through_memfd(start, len, (int)r->prot))
            spy_lazy_fail("making its pages executable", strerror(refused));
    }
}

/* The wrappers' entry: `done` is the group's flag, set once its pages are in place. */
void spy_lazy_load(uint32_t group, int *done) {
    if (__atomic_load_n(done, __ATOMIC_ACQUIRE)) return;
    pthread_mutex_lock(&spy_lazy_lock);
    if (!__atomic_load_n(done, __ATOMIC_RELAXED)) {
        spy_lazy_inflate(group);
        __atomic_store_n(done, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&spy_lazy_lock);
}
