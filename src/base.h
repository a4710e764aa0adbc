#ifndef BN_PART_BASE_H
#define BN_PART_BASE_H
#include <stddef.h>
#include <stdint.h>
/* Version, linkage, allocator hooks, status values and the error record that
   every fallible function fills in, the float16/bfloat16 conversions, and the
   enums that the options of models and contexts name. */

#define BITNET_VERSION_MAJOR 0
#define BITNET_VERSION_MINOR 1
#define BITNET_VERSION_PATCH 0
#define BITNET_VERSION "0.1.0"

/* Marks internal helpers (and, with BITNET_STATIC, the API) that a program may
   not call, so that -Wunused-function stays quiet. */
#if defined(__GNUC__) || defined(__clang__)
#define BN_MAYBE_UNUSED __attribute__((unused))
#else
#define BN_MAYBE_UNUSED
#endif

#ifndef BN_API
#ifdef BITNET_STATIC
#define BN_API static BN_MAYBE_UNUSED
#else
#define BN_API extern
#endif
#endif

/* For the parts in src/, each valid C and C++ on its own; bitnet.h wraps all
   its declarations in one extern "C" block instead. */
#ifdef __cplusplus
#define BN_EXTERN_C_BEGIN extern "C" {
#define BN_EXTERN_C_END }
#else
#define BN_EXTERN_C_BEGIN
#define BN_EXTERN_C_END
#endif

/* Every fallible function returns a bn_status and, when given a non-NULL
   bn_error, writes a message that names the file, tensor or byte offset at
   fault. BN_OK is 0, so `if (st) ...` tests for failure. */
typedef enum bn_status {
    BN_OK = 0,
    BN_ERR_IO,           /* a file could not be opened, read, mapped or written */
    BN_ERR_FORMAT,       /* a file is malformed: JSON, SafeTensors header, tokenizer.json */
    BN_ERR_UNSUPPORTED,  /* well-formed but not supported: dtype, architecture, component */
    BN_ERR_CONFIG,       /* config values are invalid or inconsistent */
    BN_ERR_MISSING,      /* a required file, key or tensor is absent */
    BN_ERR_SHAPE,        /* a tensor has the wrong shape or dtype */
    BN_ERR_NOMEM,        /* an allocation failed */
    BN_ERR_ARG,          /* the caller passed an invalid argument */
    BN_ERR_CONTEXT_FULL, /* the KV cache (or a batch arena) has no room left */
    BN_ERR_CANCELLED     /* a callback asked to stop */
} bn_status;

/* Bounds on the memory the library takes for one object (a model, a context):
   every allocation whose size comes from input - a file's contents or a
   parameter - is checked against them before it is made, and refused with
   BN_ERR_NOMEM and a message naming what it was for and its size. Zeros
   mean the defaults. */
typedef struct bn_limits {
    size_t max_alloc; /* the largest single allocation; 0: BN_DEFAULT_MAX_ALLOC */
    size_t max_total; /* the most bytes the object holds (beside the mapped files); 0: no limit */
} bn_limits;

/* 16 GiB on 64-bit targets (a 10B-parameter ternary model packs into 2.5 GB;
   the largest real single block), 1 GiB on 32-bit ones. */
#ifndef BN_DEFAULT_MAX_ALLOC
#define BN_DEFAULT_MAX_ALLOC (sizeof(size_t) >= 8 ? (size_t)0x400000000ull : (size_t)0x40000000u)
#endif

#define BN_ERROR_MSG_MAX 512
typedef struct bn_error {
    bn_status status;
    char msg[BN_ERROR_MSG_MAX];
} bn_error;

BN_EXTERN_C_BEGIN
/* A short constant name for a status, e.g. "format error". */
BN_API const char *bn_status_name(bn_status status);
/* Fill *err (if not NULL) with a printf-style message; returns status. */
BN_API bn_status bn_errorf(bn_error *err, bn_status status, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* IEEE half and bfloat16 conversions (round to nearest even on the way down). */
BN_API float bn_bf16_to_f32(uint16_t h);
BN_API uint16_t bn_f32_to_bf16(float f);
BN_API float bn_f16_to_f32(uint16_t h);
BN_API uint16_t bn_f32_to_f16(float f);

/* Read a whole file into a BN_MALLOC'd buffer with a NUL appended (not counted
   in *len). The caller frees it with bn_free. */
BN_API bn_status bn_read_file(const char *path, char **data, size_t *len, bn_error *err);
BN_API void bn_free(void *p);
/* Monotonic seconds, for progress lines and benchmarks. */
BN_API double bn_time_s(void);
BN_EXTERN_C_END

/* The choices that bn_model_params and bn_context_params offer (the defaults
   are measured best; see the sections on matrices and kernels). */

/* How ternary weights sit in memory. */
typedef enum bn_tlayout {
    BN_TLAYOUT_DEFAULT = 0, /* the layout chosen by measurement (see README) */
    BN_TLAYOUT_I2,          /* 2 bits per weight */
    BN_TLAYOUT_TQ1          /* 5 weights per byte in base 3: ~1.6 bits per weight */
} bn_tlayout;

/* Element types of float matrices (embeddings, lm_head) and of the KV cache. */
typedef enum bn_ftype {
    BN_FTYPE_F32 = 0,
    BN_FTYPE_BF16,
    BN_FTYPE_F16,
    BN_FTYPE_I8 /* int8 with one float scale per row */
} bn_ftype;

/* The matrix kernels: scalar C (the reference) and the SIMD families. */
typedef enum bn_kernel {
    BN_KERNEL_AUTO = 0, /* best for this CPU, detected at run time */
    BN_KERNEL_SCALAR,
    BN_KERNEL_AVX2,
    BN_KERNEL_AVX512, /* AVX-512 BW (+VNNI where present) */
    BN_KERNEL_NEON,
    BN_KERNEL_NEON_DOT,
    BN_KERNEL_AVX_VNNI, /* AVX2 + AVX-VNNI (256-bit vpdpbusd: client CPUs without AVX-512) */
    BN_KERNEL_AVX512_GFNI /* AVX512, its 2-bit digits taken apart by GFNI: Intel CPUs' choice (see bn_kernel_detect) */
} bn_kernel;

/* The thread pool (see the thread pool section): contexts own one; training
   and the building blocks take one. */
typedef struct bn_pool bn_pool;

/* Where the time of parallel regions goes (bn_pool_profile; bitnet bench
   --profile). Seconds, added up over regions; thread-seconds count each
   thread's time separately. */
typedef struct bn_pool_stats {
    double wall;  /* the caller's time inside bn_pool_run */
    double busy;  /* thread-seconds inside fn */
    double late;  /* thread-seconds from a region's start to each part's start (wake-up) */
    double idle;  /* thread-seconds of wall x nth outside fn: wake-up, uneven parts, the final wait */
    long regions; /* bn_pool_run calls */
} bn_pool_stats;

/* Matrices (see the matrices and kernels section): a model's weights are
   ternary bn_tmat and float bn_fmat. */
typedef struct bn_tmat bn_tmat;
typedef struct bn_fmat bn_fmat;

#ifdef BITNET_IMPLEMENTATION

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <limits.h>

#if defined(BN_MALLOC) || defined(BN_REALLOC) || defined(BN_FREE)
#if !defined(BN_MALLOC) || !defined(BN_REALLOC) || !defined(BN_FREE)
#error "bitnet.h: define all three of BN_MALLOC, BN_REALLOC and BN_FREE, or none of them"
#endif
#else
#define BN_MALLOC(sz) malloc(sz)
#define BN_REALLOC(p, sz) realloc(p, sz)
#define BN_FREE(p) free(p)
#endif
#ifndef BN_ASSERT
#include <assert.h>
#define BN_ASSERT(x) assert(x)
#endif

/* Casting helpers so the same code compiles as C and C++. */
#define BN_ALLOC(type, n) ((type *)BN_MALLOC(sizeof(type) * (size_t)(n)))
#define BN_ZALLOC(type, n) ((type *)bn__zalloc(sizeof(type) * (size_t)(n)))
#define BN_UNUSED(x) ((void)(x))
#define BN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BN_MAX(a, b) ((a) > (b) ? (a) : (b))

BN_MAYBE_UNUSED static void *bn__zalloc(size_t n) {
    void *p = BN_MALLOC(n ? n : 1);
    if (p) memset(p, 0, n ? n : 1);
    return p;
}


BN_API void bn_free(void *p) { BN_FREE(p); }

BN_API const char *bn_status_name(bn_status status) {
    switch (status) {
    case BN_OK: return "ok";
    case BN_ERR_IO: return "i/o error";
    case BN_ERR_FORMAT: return "format error";
    case BN_ERR_UNSUPPORTED: return "unsupported";
    case BN_ERR_CONFIG: return "config error";
    case BN_ERR_MISSING: return "missing";
    case BN_ERR_SHAPE: return "shape error";
    case BN_ERR_NOMEM: return "out of memory";
    case BN_ERR_ARG: return "invalid argument";
    case BN_ERR_CONTEXT_FULL: return "context full";
    case BN_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}

BN_API bn_status bn_errorf(bn_error *err, bn_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        err->status = status;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

BN_API float bn_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

BN_API uint16_t bn_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

BN_API float bn_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    float f;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        u = sign;
    } else { /* subnormal: value = mant * 2^-24 */
        f = (float)mant * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    memcpy(&f, &u, 4);
    return f;
}

BN_API uint16_t bn_f32_to_f16(float f) {
    uint32_t u, sign, absu;
    memcpy(&u, &f, 4);
    sign = (u >> 16) & 0x8000u;
    absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
    if (absu < 0x38800000u) {                                  /* subnormal or zero in half */
        float a;
        memcpy(&a, &absu, 4);
        /* a * 2^24 rounded to nearest even by the FPU's default rounding */
        return (uint16_t)(sign | (uint32_t)lrintf(a * 16777216.0f));
    }
    absu += ((uint32_t)(15 - 127) << 23) + 0xfffu + ((absu >> 13) & 1u);
    return (uint16_t)(sign | (absu >> 13));
}

BN_API bn_status bn_read_file(const char *path, char **data, size_t *len, bn_error *err) {
    FILE *f;
    long size;
    char *buf;
    *data = NULL;
    if (len) *len = 0;
    f = fopen(path, "rb");
    if (!f) return bn_errorf(err, BN_ERR_IO, "%s: cannot open file", path);
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return bn_errorf(err, BN_ERR_IO, "%s: cannot determine file size", path);
    }
    buf = (char *)BN_MALLOC((size_t)size + 1);
    if (!buf) {
        fclose(f);
        return bn_errorf(err, BN_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, size);
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        BN_FREE(buf);
        return bn_errorf(err, BN_ERR_IO, "%s: read failed", path);
    }
    fclose(f);
    buf[size] = 0;
    *data = buf;
    if (len) *len = (size_t)size;
    return BN_OK;
}

/* An object's limits and what it holds so far (see bn_limits). */
typedef struct bn__budget {
    size_t max_alloc, max_total, used;
} bn__budget;

BN_MAYBE_UNUSED static void bn__budget_init(bn__budget *b, const bn_limits *lim) {
    b->max_alloc = lim && lim->max_alloc ? lim->max_alloc : BN_DEFAULT_MAX_ALLOC;
    b->max_total = lim ? lim->max_total : 0;
    b->used = 0;
}

/* May the object allocate n bytes for `what` (a description naming the file
   and field the size comes from)? keep: the bytes stay until the object is
   freed (counted); else a temporary, checked but not counted. */
BN_MAYBE_UNUSED static bn_status bn__budget_take(bn__budget *b, size_t n, int keep, const char *what, bn_error *err) {
    if (n > b->max_alloc)
        return bn_errorf(err, BN_ERR_NOMEM, "%s: %llu bytes is over the limit of %llu bytes for one allocation "
                         "(bn_limits.max_alloc)", what, (unsigned long long)n, (unsigned long long)b->max_alloc);
    if (b->max_total && n > b->max_total - b->used)
        return bn_errorf(err, BN_ERR_NOMEM, "%s: %llu bytes more would hold %llu bytes, over the limit of %llu "
                         "(bn_limits.max_total)", what, (unsigned long long)n, (unsigned long long)(b->used + n),
                         (unsigned long long)b->max_total);
    if (keep) b->used += n;
    return BN_OK;
}

/* Join a folder and a file name into a BN_MALLOC'd string. */
BN_MAYBE_UNUSED static char *bn__path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = (char *)BN_MALLOC(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (a && dir[a - 1] != '/' && dir[a - 1] != '\\') p[a++] = '/';
    memcpy(p + a, name, b + 1);
    return p;
}

BN_MAYBE_UNUSED static char *bn__strndup(const char *s, size_t n) {
    char *p = (char *)BN_MALLOC(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
BN_API double bn_time_s(void) {
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
}
#else
#include <time.h>
#include <sys/time.h>
BN_API double bn_time_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL); /* portable to C99 without _POSIX_C_SOURCE */
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}
#endif

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_BASE_H */
