#ifndef BN_PART_SAFETENSORS_H
#define BN_PART_SAFETENSORS_H
#include "base.h"
#include "json.h"
/* SafeTensors reader and writer.

   A .safetensors file is: 8 bytes little-endian header length N, N bytes of
   JSON {"name": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]},
   ..., "__metadata__": {"k": "v"}}, then the data section; tensor bytes are
   data[b..e). The reader maps the file (read-only, zero-copy) and validates
   every entry before anyone touches the data, so a bad file gives an error
   naming the file, the tensor and the byte offset, never a crash.

   bn_safetensors_load accepts a .safetensors file, a sharded
   model.safetensors.index.json, or a folder holding either. Tensors of every
   shard appear in one list. Tensor data may be unaligned inside the map: read
   it with memcpy or bn_safetensors_read_f32 unless you checked the alignment. */

typedef enum bn_dtype {
    BN_DTYPE_F32 = 0,
    BN_DTYPE_F16,
    BN_DTYPE_BF16,
    BN_DTYPE_F64,
    BN_DTYPE_U8,
    BN_DTYPE_I8,
    BN_DTYPE_I16,
    BN_DTYPE_I32,
    BN_DTYPE_I64,
    BN_DTYPE_BOOL
} bn_dtype;

#define BN_SAFETENSORS_MAX_DIMS 8
#define BN_SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u) /* larger headers are refused */

typedef struct bn_safetensors_tensor {
    const char *name;
    bn_dtype dtype;
    int n_dims;
    int64_t shape[BN_SAFETENSORS_MAX_DIMS];
    const void *data; /* reader: points into the mapped file; writer: the caller's data */
    size_t nbytes;    /* reader: bytes in the file; writer: ignored (computed) */
    int file;         /* reader: index into bn_safetensors.files */
    size_t offset;    /* reader: absolute byte offset of the data in its file */
} bn_safetensors_tensor;

typedef struct bn_safetensors_file {
    char *path;
    const uint8_t *bytes; /* the whole file */
    size_t size;
    void *handle_;        /* internal: mapping or owned buffer */
    int mapped_;
} bn_safetensors_file;

typedef struct bn_safetensors {
    int n_tensors;
    bn_safetensors_tensor *tensors; /* sorted by name */
    int n_files;
    bn_safetensors_file *files;
    bn_json_doc *headers_;  /* internal: the parsed header of each file (names point into them) */
    size_t bytes_mapped;    /* sum of the file sizes that are mapped (or read) */
} bn_safetensors;

BN_EXTERN_C_BEGIN
BN_API bn_status bn_safetensors_load(bn_safetensors **out, const char *path, bn_error *err);
/* The same for one SafeTensors file already in memory (weights embedded in
   a program, a file received over a network): bytes[0..size) is validated as
   bn_safetensors_load validates a file; tensors point into it, so it must outlive st.
   `name` stands for the file in errors. */
BN_API bn_status bn_safetensors_load_memory(bn_safetensors **out, const void *bytes, size_t size, const char *name,
                                            bn_error *err);
BN_API void bn_safetensors_free(bn_safetensors *st);
/* The tensor with that name, or NULL. */
BN_API const bn_safetensors_tensor *bn_safetensors_find(const bn_safetensors *st, const char *name);
/* A string from the "__metadata__" object of the first file, or NULL. */
BN_API const char *bn_safetensors_metadata(const bn_safetensors *st, const char *key);
BN_API int64_t bn_safetensors_numel(const bn_safetensors_tensor *t);
/* Convert a float or integer tensor to f32 (out holds bn_safetensors_numel floats). */
BN_API bn_status bn_safetensors_read_f32(const bn_safetensors_tensor *t, float *out, bn_error *err);

BN_API size_t bn_dtype_size(bn_dtype dtype);
BN_API const char *bn_dtype_name(bn_dtype dtype); /* "F32", "BF16", ... as in the file format */

/* Write tensors (name, dtype, n_dims, shape, data of each) to path. metadata
   is NULL or a NULL-terminated list of key, value strings, e.g.
   {"format", "pt", NULL}. The header is padded to a multiple of 8 bytes so
   the data section is aligned, as the reference implementation does. */
BN_API bn_status bn_safetensors_write(const char *path, const bn_safetensors_tensor *tensors, int n, const char *const *metadata,
                             bn_error *err);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

#if !defined(BITNET_NO_MMAP) && !defined(_WIN32)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

static const char *const bn__dtype_names[] = {"F32", "F16", "BF16", "F64", "U8", "I8", "I16", "I32", "I64", "BOOL"};
static const size_t bn__dtype_sizes[] = {4, 2, 2, 8, 1, 1, 2, 4, 8, 1};

BN_API size_t bn_dtype_size(bn_dtype dtype) {
    return (unsigned)dtype < sizeof bn__dtype_sizes / sizeof bn__dtype_sizes[0] ? bn__dtype_sizes[dtype] : 0;
}

BN_API const char *bn_dtype_name(bn_dtype dtype) {
    return (unsigned)dtype < sizeof bn__dtype_names / sizeof bn__dtype_names[0] ? bn__dtype_names[dtype] : "?";
}

static int bn__dtype_parse(const bn_json *v, bn_dtype *out) {
    int i;
    for (i = 0; i < (int)(sizeof bn__dtype_names / sizeof bn__dtype_names[0]); i++)
        if (bn_json_streq(v, bn__dtype_names[i])) {
            *out = (bn_dtype)i;
            return 1;
        }
    return 0;
}

BN_API int64_t bn_safetensors_numel(const bn_safetensors_tensor *t) {
    int64_t n = 1;
    int i;
    for (i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

/* ---- mapping a file --------------------------------------------------------
   Three ways: POSIX mmap, Win32 file mapping, or (BITNET_NO_MMAP) reading the
   whole file into memory. Each fills f->bytes and f->size. */

#if defined(BITNET_NO_MMAP)
static bn_status bn__file_map(bn_safetensors_file *f, bn_error *err) {
    char *data;
    size_t len;
    bn_status st = bn_read_file(f->path, &data, &len, err);
    if (st) return st;
    f->bytes = (const uint8_t *)data;
    f->size = len;
    f->handle_ = data;
    f->mapped_ = 0;
    return BN_OK;
}
static void bn__file_unmap(bn_safetensors_file *f) { BN_FREE(f->handle_); }
#elif defined(_WIN32)
static bn_status bn__file_map(bn_safetensors_file *f, bn_error *err) {
    HANDLE h, m;
    LARGE_INTEGER size;
    void *p;
    h = CreateFileA(f->path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) return bn_errorf(err, BN_ERR_IO, "%s: cannot open file", f->path);
    if (!GetFileSizeEx(h, &size)) {
        CloseHandle(h);
        return bn_errorf(err, BN_ERR_IO, "%s: cannot determine file size", f->path);
    }
    f->size = (size_t)size.QuadPart;
    if (f->size == 0) { /* an empty file cannot be mapped; it is invalid anyway */
        CloseHandle(h);
        f->bytes = (const uint8_t *)"";
        return BN_OK;
    }
    m = CreateFileMappingA(h, NULL, PAGE_READONLY, 0, 0, NULL);
    CloseHandle(h);
    if (!m) return bn_errorf(err, BN_ERR_IO, "%s: cannot map file", f->path);
    p = MapViewOfFile(m, FILE_MAP_READ, 0, 0, 0);
    CloseHandle(m);
    if (!p) return bn_errorf(err, BN_ERR_IO, "%s: cannot map file", f->path);
    f->bytes = (const uint8_t *)p;
    f->handle_ = p;
    f->mapped_ = 1;
    return BN_OK;
}
static void bn__file_unmap(bn_safetensors_file *f) {
    if (f->handle_) UnmapViewOfFile(f->handle_);
}
#else
static bn_status bn__file_map(bn_safetensors_file *f, bn_error *err) {
    struct stat sb;
    void *p;
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return bn_errorf(err, BN_ERR_IO, "%s: cannot open file", f->path);
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return bn_errorf(err, BN_ERR_IO, "%s: not a regular file", f->path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size == 0) { /* mmap refuses length 0; an empty file is invalid anyway */
        close(fd);
        f->bytes = (const uint8_t *)"";
        return BN_OK;
    }
    p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return bn_errorf(err, BN_ERR_IO, "%s: cannot map file", f->path);
    f->bytes = (const uint8_t *)p;
    f->handle_ = p;
    f->mapped_ = 1;
    return BN_OK;
}
static void bn__file_unmap(bn_safetensors_file *f) {
    if (f->handle_) munmap(f->handle_, f->size);
}
#endif

/* ---- validating one file's header ------------------------------------------ */

static uint64_t bn__le64(const uint8_t *p) {
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* A non-negative integer from JSON that fits in 53 bits (all sizes we accept). */
static int bn__json_u53(const bn_json *v, uint64_t *out) {
    if (!v || v->type != BN_JSON_NUMBER || v->num < 0 || v->num != floor(v->num) || v->num > 9007199254740992.0)
        return 0;
    *out = (uint64_t)v->num;
    return 1;
}

static int bn__safetensors_cmp_offset(const void *a, const void *b) {
    const bn_safetensors_tensor *x = (const bn_safetensors_tensor *)a, *y = (const bn_safetensors_tensor *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : (x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes);
}

static int bn__safetensors_cmp_name(const void *a, const void *b) {
    return strcmp(((const bn_safetensors_tensor *)a)->name, ((const bn_safetensors_tensor *)b)->name);
}

/* Parse one tensor entry of file `fi` into *t (offsets relative to the data section). */
static bn_status bn__safetensors_parse_entry(const bn_safetensors_file *f, int fi, const bn_json *e, uint64_t data_size,
                                    bn_safetensors_tensor *t, bn_error *err) {
    const bn_json *dt = bn_json_get(e, "dtype"), *shape = bn_json_get(e, "shape"), *offs = bn_json_get(e, "data_offsets");
    uint64_t begin, end, numel = 1, nbytes;
    int d;
    memset(t, 0, sizeof *t);
    t->name = e->key;
    t->file = fi;
    if (e->type != BN_JSON_OBJECT)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", f->path, e->key);
    if (!dt || dt->type != BN_JSON_STRING)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", f->path, e->key);
    if (!bn__dtype_parse(dt, &t->dtype))
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s'", f->path, e->key, dt->str);
    if (!shape || shape->type != BN_JSON_ARRAY)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': missing \"shape\" array", f->path, e->key);
    if (shape->len > BN_SAFETENSORS_MAX_DIMS)
        return bn_errorf(err, BN_ERR_UNSUPPORTED, "%s: tensor '%s': %d dimensions (at most %d)", f->path, e->key,
                         shape->len, BN_SAFETENSORS_MAX_DIMS);
    t->n_dims = shape->len;
    for (d = 0; d < shape->len; d++) {
        uint64_t dim;
        if (!bn__json_u53(&shape->child[d], &dim) || dim > ((uint64_t)1 << 40))
            return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': bad shape dimension %d", f->path, e->key, d);
        t->shape[d] = (int64_t)dim;
        /* numel stays below 2^53 or we stop: no overflow in the product */
        if (dim && numel > ((uint64_t)1 << 53) / dim)
            return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': shape too large", f->path, e->key);
        numel *= dim;
    }
    if (!offs || offs->type != BN_JSON_ARRAY || offs->len != 2 || !bn__json_u53(&offs->child[0], &begin) ||
        !bn__json_u53(&offs->child[1], &end) || end < begin)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s': bad \"data_offsets\" (need [begin, end], begin <= end)",
                         f->path, e->key);
    nbytes = numel * bn_dtype_size(t->dtype);
    if (end - begin != nbytes)
        return bn_errorf(err, BN_ERR_FORMAT,
                         "%s: tensor '%s': shape x dtype is %llu bytes but data_offsets [%llu, %llu] hold %llu", f->path,
                         e->key, (unsigned long long)nbytes, (unsigned long long)begin, (unsigned long long)end,
                         (unsigned long long)(end - begin));
    if (end > data_size)
        return bn_errorf(err, BN_ERR_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] run past the data section (%llu bytes)", f->path,
                         e->key, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    t->offset = (size_t)begin;
    t->nbytes = (size_t)nbytes;
    return BN_OK;
}

/* Validate file f (already mapped) and append its tensors to *list. */
static bn_status bn__safetensors_parse_file(bn_safetensors_file *f, int fi, bn_json_doc *doc, bn_safetensors_tensor **list, int *n_list,
                                   bn_error *err) {
    uint64_t hlen, data_start, data_size;
    const bn_json *root;
    bn_safetensors_tensor *ts;
    int i, n = 0, base = *n_list;
    bn_status st;
    if (f->size < 8) return bn_errorf(err, BN_ERR_FORMAT, "%s: %lu bytes is too short for a SafeTensors file", f->path, (unsigned long)f->size);
    hlen = bn__le64(f->bytes);
    if (hlen > BN_SAFETENSORS_MAX_HEADER)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: header length %llu is over the 100 MB limit", f->path, (unsigned long long)hlen);
    if (hlen > f->size - 8)
        return bn_errorf(err, BN_ERR_FORMAT, "%s: header length %llu is larger than the file (%lu bytes)", f->path,
                         (unsigned long long)hlen, (unsigned long)f->size);
    st = bn_json_parse(doc, (const char *)f->bytes + 8, (size_t)hlen, f->path, err);
    if (st) return st; /* the message names the file and the byte offset in the header */
    root = doc->root;
    if (root->type != BN_JSON_OBJECT) return bn_errorf(err, BN_ERR_FORMAT, "%s: header is not a JSON object", f->path);
    data_start = 8 + hlen;
    data_size = f->size - data_start;
    for (i = 0; i < root->len; i++) {
        const bn_json *e = &root->child[i];
        if (e->key_len == 12 && memcmp(e->key, "__metadata__", 12) == 0) {
            int j;
            if (e->type != BN_JSON_OBJECT) return bn_errorf(err, BN_ERR_FORMAT, "%s: __metadata__ is not an object", f->path);
            for (j = 0; j < e->len; j++)
                if (e->child[j].type != BN_JSON_STRING)
                    return bn_errorf(err, BN_ERR_FORMAT, "%s: __metadata__ value '%s' is not a string", f->path, e->child[j].key);
            continue;
        }
        n++;
    }
    ts = (bn_safetensors_tensor *)BN_REALLOC(*list, sizeof(bn_safetensors_tensor) * (size_t)(base + n + 1));
    if (!ts) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory for %d tensors", f->path, n);
    *list = ts;
    for (i = 0; i < root->len; i++) {
        const bn_json *e = &root->child[i];
        if (e->key_len == 12 && memcmp(e->key, "__metadata__", 12) == 0) continue;
        if ((size_t)e->key_len != strlen(e->key))
            return bn_errorf(err, BN_ERR_FORMAT, "%s: a tensor name contains a NUL character", f->path);
        st = bn__safetensors_parse_entry(f, fi, e, data_size, &ts[*n_list], err);
        if (st) return st;
        (*n_list)++;
    }
    /* No two tensors may share bytes: sort by offset and compare neighbours. */
    qsort(ts + base, (size_t)n, sizeof *ts, bn__safetensors_cmp_offset);
    for (i = base + 1; i < base + n; i++)
        if (ts[i].nbytes && ts[i - 1].offset + ts[i - 1].nbytes > ts[i].offset)
            return bn_errorf(err, BN_ERR_FORMAT, "%s: tensors '%s' [%lu, %lu) and '%s' [%lu, %lu) overlap", f->path,
                             ts[i - 1].name, (unsigned long)ts[i - 1].offset,
                             (unsigned long)(ts[i - 1].offset + ts[i - 1].nbytes), ts[i].name, (unsigned long)ts[i].offset,
                             (unsigned long)(ts[i].offset + ts[i].nbytes));
    for (i = base; i < base + n; i++) {
        ts[i].offset += (size_t)data_start;
        ts[i].data = f->bytes + ts[i].offset;
    }
    return BN_OK;
}

/* ---- opening a file, an index or a folder ---------------------------------- */

static int bn__file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static int bn__ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The folder part of a path ("" when none), BN_MALLOC'd. */
static char *bn__dirname(const char *path) {
    size_t n = strlen(path);
    while (n > 0 && path[n - 1] != '/' && path[n - 1] != '\\') n--;
    return bn__strndup(path, n);
}

/* Collect the distinct shard file names of an index's weight_map, in order of appearance. */
static bn_status bn__safetensors_index_shards(const char *index_path, const bn_json *map, char ***names, int *n, bn_error *err) {
    int i, j;
    *names = BN_ALLOC(char *, map->len + 1);
    *n = 0;
    if (!*names) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", index_path);
    for (i = 0; i < map->len; i++) {
        const bn_json *v = &map->child[i];
        int seen = 0;
        if (v->type != BN_JSON_STRING || v->len == 0 || strchr(v->str, '/') || strchr(v->str, '\\'))
            return bn_errorf(err, BN_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name in the same folder",
                             index_path, v->key);
        for (j = 0; j < *n && !seen; j++) seen = strcmp((*names)[j], v->str) == 0;
        if (!seen) (*names)[(*n)++] = (char *)v->str;
    }
    return BN_OK;
}

static bn_status bn__safetensors_open_files(bn_safetensors *st, char **paths, int n, bn_error *err) {
    int i;
    bn_status s;
    st->files = BN_ZALLOC(bn_safetensors_file, n);
    st->headers_ = BN_ZALLOC(bn_json_doc, n);
    if (!st->files || !st->headers_) return bn_errorf(err, BN_ERR_NOMEM, "out of memory opening %d files", n);
    for (i = 0; i < n; i++) {
        bn_safetensors_file *f = &st->files[i];
        f->path = paths[i];
        paths[i] = NULL;
        st->n_files = i + 1;
        s = bn__file_map(f, err);
        if (s) return s;
        st->bytes_mapped += f->size;
        s = bn__safetensors_parse_file(f, i, &st->headers_[i], &st->tensors, &st->n_tensors, err);
        if (s) return s;
    }
    return BN_OK;
}

/* Sort the tensors by name for bn_safetensors_find; a name may appear only once. */
static bn_status bn__safetensors_sort_names(bn_safetensors *st, bn_error *err) {
    int i;
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, bn__safetensors_cmp_name);
    for (i = 1; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return bn_errorf(err, BN_ERR_FORMAT, "%s: tensor '%s' appears twice (also in %s)",
                             st->files[st->tensors[i].file].path, st->tensors[i].name,
                             st->files[st->tensors[i - 1].file].path);
    return BN_OK;
}

/* Every tensor of the weight_map must be in the shard it names. */
static bn_status bn__safetensors_check_index(const bn_safetensors *st, const char *index_path, const bn_json *map, bn_error *err) {
    int i;
    for (i = 0; i < map->len; i++) {
        const bn_safetensors_tensor *t = bn_safetensors_find(st, map->child[i].key);
        const char *shard = st->files[t ? t->file : 0].path;
        if (!t || !bn__ends_with(shard, map->child[i].str))
            return bn_errorf(err, BN_ERR_MISSING, "%s: tensor '%s' is not in shard '%s'", index_path, map->child[i].key,
                             map->child[i].str);
    }
    return BN_OK;
}

static bn_status bn__safetensors_open(bn_safetensors *st, const char *path, bn_error *err) {
    char *file = NULL, *index = NULL, **paths = NULL, **names = NULL, *dir = NULL, *text = NULL;
    int i, n = 0;
    bn_json_doc doc;
    const bn_json *map;
    bn_status s = BN_OK;
    memset(&doc, 0, sizeof doc);
    /* A folder: model.safetensors, else model.safetensors.index.json. */
    file = bn__path_join(path, "model.safetensors");
    index = bn__path_join(path, "model.safetensors.index.json");
    if (!file || !index) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
    if (!bn__file_exists(file)) {
        BN_FREE(file);
        file = NULL;
        if (!bn__file_exists(index)) {
            BN_FREE(index);
            index = NULL;
            if (bn__ends_with(path, ".json")) index = bn__strndup(path, strlen(path));
            else if (bn__ends_with(path, ".safetensors")) file = bn__strndup(path, strlen(path));
            else {
                s = bn_errorf(err, BN_ERR_MISSING, "%s: no model.safetensors or model.safetensors.index.json here "
                              "(a file path must end in .safetensors or .json)", path);
                goto done;
            }
            if (!index && !file) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
        }
    }
    if (file) { /* one file */
        paths = BN_ALLOC(char *, 1);
        if (!paths) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
        paths[0] = file;
        file = NULL;
        n = 1;
        if ((s = bn__safetensors_open_files(st, paths, n, err)) == BN_OK) s = bn__safetensors_sort_names(st, err);
        goto done;
    }
    /* An index: {"metadata": {...}, "weight_map": {"tensor": "shard file"}} */
    if ((s = bn_read_file(index, &text, NULL, err)) != BN_OK) goto done;
    if ((s = bn_json_parse(&doc, text, strlen(text), index, err)) != BN_OK) goto done;
    map = bn_json_get(doc.root, "weight_map");
    if (!map || map->type != BN_JSON_OBJECT || map->len == 0) {
        s = bn_errorf(err, BN_ERR_FORMAT, "%s: no \"weight_map\" object", index);
        goto done;
    }
    if ((s = bn__safetensors_index_shards(index, map, &names, &n, err)) != BN_OK) goto done;
    dir = bn__dirname(index);
    paths = BN_ZALLOC(char *, n);
    if (!dir || !paths) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
    for (i = 0; i < n; i++)
        if (!(paths[i] = bn__path_join(dir, names[i]))) { s = bn_errorf(err, BN_ERR_NOMEM, "out of memory"); goto done; }
    if ((s = bn__safetensors_open_files(st, paths, n, err)) != BN_OK) goto done;
    if ((s = bn__safetensors_sort_names(st, err)) != BN_OK) goto done;
    s = bn__safetensors_check_index(st, index, map, err);
done:
    if (paths)
        for (i = 0; i < n; i++) BN_FREE(paths[i]);
    BN_FREE(paths);
    BN_FREE(names);
    BN_FREE(dir);
    BN_FREE(text);
    BN_FREE(file);
    BN_FREE(index);
    bn_json_free(&doc);
    return s;
}

BN_API bn_status bn_safetensors_load(bn_safetensors **out, const char *path, bn_error *err) {
    bn_safetensors *st;
    bn_status s;
    *out = NULL;
    if (!path) return bn_errorf(err, BN_ERR_ARG, "bn_safetensors_load: path is NULL");
    st = BN_ZALLOC(bn_safetensors, 1);
    if (!st) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", path);
    s = bn__safetensors_open(st, path, err);
    if (s) {
        bn_safetensors_free(st);
        return s;
    }
    *out = st;
    return BN_OK;
}

BN_API bn_status bn_safetensors_load_memory(bn_safetensors **out, const void *bytes, size_t size, const char *name,
                                            bn_error *err) {
    bn_safetensors *st;
    bn_status s;
    *out = NULL;
    if (!bytes && size) return bn_errorf(err, BN_ERR_ARG, "bn_safetensors_load_memory: bytes is NULL");
    if (!name) name = "(memory)";
    st = BN_ZALLOC(bn_safetensors, 1);
    if (!st) return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", name);
    st->files = BN_ZALLOC(bn_safetensors_file, 1);
    st->headers_ = BN_ZALLOC(bn_json_doc, 1);
    if (st->files) st->files[0].path = bn__strndup(name, strlen(name));
    if (!st->files || !st->headers_ || !st->files[0].path) {
        bn_safetensors_free(st);
        return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory", name);
    }
    st->n_files = 1;
    st->files[0].bytes = bytes ? (const uint8_t *)bytes : (const uint8_t *)""; /* not owned: handle_ stays NULL */
    st->files[0].size = size;
    s = bn__safetensors_parse_file(&st->files[0], 0, &st->headers_[0], &st->tensors, &st->n_tensors, err);
    if (!s) s = bn__safetensors_sort_names(st, err);
    if (s) {
        bn_safetensors_free(st);
        return s;
    }
    *out = st;
    return BN_OK;
}

BN_API void bn_safetensors_free(bn_safetensors *st) {
    int i;
    if (!st) return;
    for (i = 0; i < st->n_files; i++) {
        bn__file_unmap(&st->files[i]);
        BN_FREE(st->files[i].path);
        bn_json_free(&st->headers_[i]);
    }
    BN_FREE(st->files);
    BN_FREE(st->headers_);
    BN_FREE(st->tensors);
    BN_FREE(st);
}

BN_API const bn_safetensors_tensor *bn_safetensors_find(const bn_safetensors *st, const char *name) {
    int lo = 0, hi = st ? st->n_tensors - 1 : -1;
    while (lo <= hi) { /* tensors are sorted by name */
        int mid = lo + (hi - lo) / 2, c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

BN_API const char *bn_safetensors_metadata(const bn_safetensors *st, const char *key) {
    if (!st || st->n_files == 0) return NULL;
    return bn_json_string(bn_json_get(st->headers_[0].root, "__metadata__"), key, NULL);
}

BN_API bn_status bn_safetensors_read_f32(const bn_safetensors_tensor *t, float *out, bn_error *err) {
    size_t i, n = (size_t)bn_safetensors_numel(t), sz = bn_dtype_size(t->dtype);
    const uint8_t *p = (const uint8_t *)t->data;
    for (i = 0; i < n; i++, p += sz) {
        uint16_t h;
        uint32_t u32;
        uint64_t u64;
        float f;
        double d;
        switch (t->dtype) {
        case BN_DTYPE_F32: memcpy(&f, p, 4); out[i] = f; break;
        case BN_DTYPE_F16: memcpy(&h, p, 2); out[i] = bn_f16_to_f32(h); break;
        case BN_DTYPE_BF16: memcpy(&h, p, 2); out[i] = bn_bf16_to_f32(h); break;
        case BN_DTYPE_F64: memcpy(&d, p, 8); out[i] = (float)d; break;
        case BN_DTYPE_U8: case BN_DTYPE_BOOL: out[i] = (float)*p; break;
        case BN_DTYPE_I8: out[i] = (float)(int8_t)*p; break;
        case BN_DTYPE_I16: memcpy(&h, p, 2); out[i] = (float)(int16_t)h; break;
        case BN_DTYPE_I32: memcpy(&u32, p, 4); out[i] = (float)(int32_t)u32; break;
        case BN_DTYPE_I64: memcpy(&u64, p, 8); out[i] = (float)(int64_t)u64; break;
        default: return bn_errorf(err, BN_ERR_UNSUPPORTED, "tensor '%s': dtype %d", t->name, (int)t->dtype);
        }
    }
    return BN_OK;
}

/* ---- writer ---------------------------------------------------------------- */

/* A growing text buffer for the JSON header. */
typedef struct bn__sbuf {
    char *s;
    size_t len, cap;
    int oom;
} bn__sbuf;

static void bn__sbuf_put(bn__sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *ns = (char *)BN_REALLOC(b->s, cap);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void bn__sbuf_str(bn__sbuf *b, const char *s) { bn__sbuf_put(b, s, strlen(s)); }

/* A JSON string literal with the escapes JSON requires. */
static void bn__sbuf_jstr(bn__sbuf *b, const char *s) {
    bn__sbuf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; bn__sbuf_put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); bn__sbuf_put(b, esc, 6); }
        else bn__sbuf_put(b, (const char *)&c, 1);
    }
    bn__sbuf_put(b, "\"", 1);
}

BN_API bn_status bn_safetensors_write(const char *path, const bn_safetensors_tensor *tensors, int n, const char *const *metadata,
                             bn_error *err) {
    bn__sbuf h;
    FILE *f;
    uint64_t offset = 0, hlen;
    uint8_t len8[8];
    int i, d, ok;
    char num[64];
    memset(&h, 0, sizeof h);
    if (!path || n < 0 || (n > 0 && !tensors)) return bn_errorf(err, BN_ERR_ARG, "bn_safetensors_write: bad arguments");
    bn__sbuf_str(&h, "{");
    if (metadata && metadata[0]) {
        bn__sbuf_str(&h, "\"__metadata__\":{");
        for (i = 0; metadata[i] && metadata[i + 1]; i += 2) {
            if (i) bn__sbuf_str(&h, ",");
            bn__sbuf_jstr(&h, metadata[i]);
            bn__sbuf_str(&h, ":");
            bn__sbuf_jstr(&h, metadata[i + 1]);
        }
        bn__sbuf_str(&h, "}");
    }
    for (i = 0; i < n; i++) {
        const bn_safetensors_tensor *t = &tensors[i];
        uint64_t nbytes;
        if (!t->name || bn_dtype_size(t->dtype) == 0 || t->n_dims < 0 || t->n_dims > BN_SAFETENSORS_MAX_DIMS ||
            (bn_safetensors_numel(t) > 0 && !t->data)) {
            BN_FREE(h.s);
            return bn_errorf(err, BN_ERR_ARG, "%s: tensor %d ('%s') has a bad name, dtype, shape or no data", path, i,
                             t->name ? t->name : "(null)");
        }
        nbytes = (uint64_t)bn_safetensors_numel(t) * bn_dtype_size(t->dtype);
        if (i || (metadata && metadata[0])) bn__sbuf_str(&h, ",");
        bn__sbuf_jstr(&h, t->name);
        bn__sbuf_str(&h, ":{\"dtype\":\"");
        bn__sbuf_str(&h, bn_dtype_name(t->dtype));
        bn__sbuf_str(&h, "\",\"shape\":[");
        for (d = 0; d < t->n_dims; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            bn__sbuf_str(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + nbytes));
        bn__sbuf_str(&h, num);
        offset += nbytes;
    }
    bn__sbuf_str(&h, "}");
    while (!h.oom && (8 + h.len) % 8) bn__sbuf_str(&h, " "); /* pad: the data section starts 8-aligned */
    if (h.oom) {
        BN_FREE(h.s);
        return bn_errorf(err, BN_ERR_NOMEM, "%s: out of memory building the header", path);
    }
    f = fopen(path, "wb");
    if (!f) {
        BN_FREE(h.s);
        return bn_errorf(err, BN_ERR_IO, "%s: cannot create file", path);
    }
    hlen = h.len;
    for (i = 0; i < 8; i++) len8[i] = (uint8_t)(hlen >> (8 * i));
    ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    for (i = 0; ok && i < n; i++) {
        size_t nbytes = (size_t)bn_safetensors_numel(&tensors[i]) * bn_dtype_size(tensors[i].dtype);
        ok = nbytes == 0 || fwrite(tensors[i].data, 1, nbytes, f) == nbytes;
    }
    ok = (fclose(f) == 0) && ok;
    BN_FREE(h.s);
    if (!ok) return bn_errorf(err, BN_ERR_IO, "%s: write failed", path);
    return BN_OK;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_SAFETENSORS_H */
