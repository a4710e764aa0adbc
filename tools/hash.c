/* hash.c: SHA-256 and SHA-1 (FIPS 180-4), for checking what `bitnet pull` downloads.

   The Hub names every file by a hash: an LFS file (the weights) by the SHA-256 of its bytes,
   a file kept in git (config.json, tokenizer.json) by its git blob id, the SHA-1 of
   "blob <size>\0" followed by the bytes. A download is kept only when its hash is that name. */
#include "hub.h"

#include <stdio.h>
#include <string.h>

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define ROL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static uint32_t load_be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static void sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    int i;
    for (i = 0; i < 16; i++) w[i] = load_be32(p + 4 * i);
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    for (i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha1_block(uint32_t h[5], const uint8_t *p) {
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    int i;
    for (i = 0; i < 16; i++) w[i] = load_be32(p + 4 * i);
    for (i = 16; i < 80; i++) w[i] = ROL32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) f = (b & c) | (~b & d), k = 0x5a827999;
        else if (i < 40) f = b ^ c ^ d, k = 0x6ed9eba1;
        else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8f1bbcdc;
        else f = b ^ c ^ d, k = 0xca62c1d6;
        t = ROL32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = ROL32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void hash_init(hash_ctx *c, hash_kind kind) {
    static const uint32_t init256[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    static const uint32_t init1[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memset(c, 0, sizeof *c);
    c->kind = kind;
    if (kind == HASH_SHA256) memcpy(c->h, init256, sizeof init256);
    else memcpy(c->h, init1, sizeof init1);
}

static void hash_block(hash_ctx *c, const uint8_t *p) {
    if (c->kind == HASH_SHA256) sha256_block(c->h, p);
    else sha1_block(c->h, p);
}

void hash_update(hash_ctx *c, const void *data, size_t n) {
    const uint8_t *p = (const uint8_t *)data;
    c->total += n;
    if (c->used) {
        size_t take = 64 - c->used < n ? 64 - c->used : n;
        memcpy(c->buf + c->used, p, take);
        c->used += take;
        p += take;
        n -= take;
        if (c->used < 64) return;
        hash_block(c, c->buf);
        c->used = 0;
    }
    for (; n >= 64; p += 64, n -= 64) hash_block(c, p);
    memcpy(c->buf, p, n);
    c->used = n;
}

/* Pads with 0x80, zeros and the bit length, then writes the digest as lowercase hex. */
void hash_final_hex(hash_ctx *c, char *hex) {
    static const char digits[] = "0123456789abcdef";
    uint64_t bits = c->total * 8;
    uint8_t len[8], out[32];
    int i, n_words = c->kind == HASH_SHA256 ? 8 : 5;
    for (i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    c->buf[c->used++] = 0x80;
    if (c->used > 56) {
        memset(c->buf + c->used, 0, 64 - c->used);
        hash_block(c, c->buf);
        c->used = 0;
    }
    memset(c->buf + c->used, 0, 56 - c->used);
    memcpy(c->buf + 56, len, 8);
    hash_block(c, c->buf);
    for (i = 0; i < n_words; i++) store_be32(out + 4 * i, c->h[i]);
    for (i = 0; i < 4 * n_words; i++) {
        hex[2 * i] = digits[out[i] >> 4];
        hex[2 * i + 1] = digits[out[i] & 15];
    }
    hex[8 * n_words] = 0;
}

/* The name the Hub gives a file's bytes: 64 hex digits are a SHA-256, 40 a git blob id. */
int hash_kind_of_etag(const char *etag, hash_kind *kind) {
    size_t i, n = strlen(etag);
    for (i = 0; i < n; i++)
        if (!((etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f'))) return 0;
    if (n == 64) *kind = HASH_SHA256;
    else if (n == 40) *kind = HASH_GIT_SHA1;
    else return 0;
    return 1;
}

int hash_file_hex(const char *path, hash_kind kind, char *hex, progress *bar) {
    static unsigned char buf[1 << 16];
    hash_ctx c;
    FILE *f = fopen(path, "rb");
    size_t got;
    long long done = 0, size = -1;
    if (!f) return 0;
    hash_init(&c, kind);
    if (kind == HASH_GIT_SHA1) {
        char head[32];
        if (fseek(f, 0, SEEK_END) == 0) size = (long long)ftell(f);
        if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
            fclose(f);
            return 0;
        }
        snprintf(head, sizeof head, "blob %lld", size);
        hash_update(&c, head, strlen(head) + 1); /* the NUL belongs to the header */
    }
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        hash_update(&c, buf, got);
        done += (long long)got;
        if (bar) progress_update(bar, done);
    }
    if (ferror(f)) {
        fclose(f);
        return 0;
    }
    fclose(f);
    hash_final_hex(&c, hex);
    return 1;
}
