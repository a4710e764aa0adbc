/* Helpers shared by the harnesses (not part of the library). */
#ifndef BN_FUZZ_COMMON_H
#define BN_FUZZ_COMMON_H
#define _XOPEN_SOURCE 700
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../../bitnet.h"

/* Tight limits for every object a harness creates: an input that asks for
   more must fail with an error, not trip libFuzzer's memory limit. */
BN_MAYBE_UNUSED static bn_limits fuzz_limits(void) {
    bn_limits l;
    l.max_alloc = (size_t)64 << 20;
    l.max_total = (size_t)256 << 20;
    return l;
}

/* Part k of data split at `sep` (a byte string), or NULL past the last part. */
BN_MAYBE_UNUSED static const uint8_t *fuzz_part(const uint8_t *data, size_t size, const char *sep, int k, size_t *len) {
    size_t seplen = strlen(sep), start = 0, i;
    int part = 0;
    for (i = 0; i + seplen <= size; i++)
        if (memcmp(data + i, sep, seplen) == 0) {
            if (part == k) { *len = i - start; return data + start; }
            part++;
            start = i + seplen;
            i += seplen - 1;
        }
    if (part == k) { *len = size - start; return data + start; }
    return NULL;
}

/* A NUL-terminated copy (free with free). */
BN_MAYBE_UNUSED static char *fuzz_strdup(const uint8_t *p, size_t n) {
    char *s = (char *)malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* This process's scratch folder under /tmp (made once). */
BN_MAYBE_UNUSED static const char *fuzz_dir(const char *name) {
    static char dir[256];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/bn-fuzz-%s-%ld", name, (long)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* Write n bytes to dir/file (n == (size_t)-1: remove it). */
BN_MAYBE_UNUSED static void fuzz_write(const char *dir, const char *file, const void *p, size_t n) {
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (n == (size_t)-1) { remove(path); return; }
    f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(p, 1, n, f) != n) abort();
    fclose(f);
}
#endif
