/* spy-lazy-pack IN OUT: IN as one zstd frame (level 19, content size recorded) in OUT, for a lazy
   code group of the final link (spy_lazy_link.py), and for Python 2.7's ensurepip wheels
   (cpython-tools' spy-pack-wheels.py). Inputs are a few MB: read whole. */
#include <stdio.h>
#include <stdlib.h>
#include <zstd.h>

static unsigned char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) { fputs("spy-lazy-pack: out of memory\n", stderr); exit(1); }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        buf = realloc(buf, cap *= 2);
    }
    if (ferror(f)) { perror(path); exit(1); }
    fclose(f);
    *size = n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 3) { fputs("usage: spy-lazy-pack IN OUT\n", stderr); return 2; }
    size_t n;
    unsigned char *in = slurp(argv[1], &n);
    size_t cap = ZSTD_compressBound(n);
    unsigned char *out = malloc(cap);
    if (!out) { fputs("spy-lazy-pack: out of memory\n", stderr); return 1; }
    size_t m = ZSTD_compress(out, cap, in, n, 19);
    if (ZSTD_isError(m)) { fprintf(stderr, "spy-lazy-pack: %s: %s\n", argv[1], ZSTD_getErrorName(m)); return 1; }
    FILE *f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, m, f) != m || fclose(f)) { perror(argv[2]); return 1; }
    return 0;
}
