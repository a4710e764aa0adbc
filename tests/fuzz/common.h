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

/* What the harness made in its scratch folder, removed when the process exits
   (libFuzzer ends a run with exit()): paths, folders last. */
static char fuzz_made[16][512];
static int fuzz_n_made;

BN_MAYBE_UNUSED static void fuzz_cleanup(void) {
    while (fuzz_n_made > 0) {
        const char *path = fuzz_made[--fuzz_n_made];
        if (remove(path) != 0) rmdir(path);
    }
}

BN_MAYBE_UNUSED static void fuzz_remember(const char *path) {
    int i;
    for (i = 0; i < fuzz_n_made; i++)
        if (!strcmp(fuzz_made[i], path)) return;
    if (fuzz_n_made < 16) snprintf(fuzz_made[fuzz_n_made++], sizeof fuzz_made[0], "%s", path);
}

/* This process's scratch folder under $TMPDIR or /tmp (made once). A tmpfs
   such as /dev/shm spares the harnesses that write files a disk's costs. */
BN_MAYBE_UNUSED static const char *fuzz_dir(const char *name) {
    static char dir[256];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/bn-fuzz-%s-%ld", tmp && *tmp ? tmp : "/tmp", name, (long)getpid());
        mkdir(dir, 0700);
        fuzz_remember(dir);
        atexit(fuzz_cleanup);
    }
    return dir;
}

/* A folder inside the scratch folder, removed at exit with it. */
BN_MAYBE_UNUSED static void fuzz_mkdir(const char *path) {
    mkdir(path, 0700);
    fuzz_remember(path);
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
    fuzz_remember(path);
}
#endif
