/* SafeTensors reader and writer: round trips, the HF fixtures, sharded
   checkpoints, and one test per malformed file (each must give its named error). */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#include <sys/stat.h>

#define TMP "build/tmp"

static void make_tmp(void) {
    mkdir("build", 0755);
    mkdir(TMP, 0755);
}

/* Write a raw file: 8-byte length, the header text as given, then data_len bytes of data. */
static void write_raw(const char *path, const char *header, uint64_t hlen_field, size_t data_len) {
    FILE *f = fopen(path, "wb");
    uint8_t len8[8];
    size_t i;
    for (i = 0; i < 8; i++) len8[i] = (uint8_t)(hlen_field >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(header, 1, strlen(header), f);
    for (i = 0; i < data_len; i++) fputc((int)(i & 0xff), f);
    fclose(f);
}

/* Write a file whose length field is the header's real length. */
static void write_st(const char *path, const char *header, size_t data_len) {
    write_raw(path, header, strlen(header), data_len);
}

/* Open must fail with `status` and a message containing every one of the given words. */
static void expect_error(const char *path, bn_status status, const char *word1, const char *word2) {
    bn_safetensors *st = NULL;
    bn_error err;
    bn_status s = bn_safetensors_load(&st, path, &err);
    BNT_CHECKF(s == status, "%s: status %s, want %s (%s)", path, bn_status_name(s), bn_status_name(status),
               s ? err.msg : "opened");
    BNT_CHECK(st == NULL);
    if (s) {
        printf("    %s -> %s\n", bn_status_name(s), err.msg);
        BNT_CHECKF(strstr(err.msg, path) != NULL, "message does not name the file: %s", err.msg);
        if (word1) BNT_CHECKF(strstr(err.msg, word1) != NULL, "message lacks '%s': %s", word1, err.msg);
        if (word2) BNT_CHECKF(strstr(err.msg, word2) != NULL, "message lacks '%s': %s", word2, err.msg);
    }
    bn_safetensors_free(st);
}

static void test_round_trip(void) {
    const char *path = TMP "/st_round_trip.safetensors";
    static const char *const meta[] = {"format", "pt", "note", "quote \" and \\ and \n", NULL};
    float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-20f};
    uint16_t bf16[3], f16[3];
    uint8_t u8[5] = {0, 1, 2, 254, 255};
    int8_t i8[4] = {-128, -1, 0, 127};
    int32_t i32[2] = {-7, 2147483647};
    int64_t i64[2] = {-1, (int64_t)1 << 40};
    bn_safetensors_tensor ts[7];
    bn_safetensors *st = NULL;
    bn_error err;
    const bn_safetensors_tensor *t;
    float out[6];
    int i;
    memset(ts, 0, sizeof ts);
    for (i = 0; i < 3; i++) {
        bf16[i] = bn_f32_to_bf16(f32[i]);
        f16[i] = bn_f32_to_f16(f32[i]);
    }
    ts[0].name = "w.f32"; ts[0].dtype = BN_DTYPE_F32; ts[0].n_dims = 2; ts[0].shape[0] = 2; ts[0].shape[1] = 3; ts[0].data = f32;
    ts[1].name = "w.bf16"; ts[1].dtype = BN_DTYPE_BF16; ts[1].n_dims = 1; ts[1].shape[0] = 3; ts[1].data = bf16;
    ts[2].name = "w.f16"; ts[2].dtype = BN_DTYPE_F16; ts[2].n_dims = 1; ts[2].shape[0] = 3; ts[2].data = f16;
    ts[3].name = "codes \"odd\" name"; ts[3].dtype = BN_DTYPE_U8; ts[3].n_dims = 1; ts[3].shape[0] = 5; ts[3].data = u8;
    ts[4].name = "i8"; ts[4].dtype = BN_DTYPE_I8; ts[4].n_dims = 2; ts[4].shape[0] = 2; ts[4].shape[1] = 2; ts[4].data = i8;
    ts[5].name = "i32"; ts[5].dtype = BN_DTYPE_I32; ts[5].n_dims = 1; ts[5].shape[0] = 2; ts[5].data = i32;
    ts[6].name = "scalar.i64"; ts[6].dtype = BN_DTYPE_I64; ts[6].n_dims = 1; ts[6].shape[0] = 2; ts[6].data = i64;
    BNT_CHECKF(bn_safetensors_write(path, ts, 7, meta, &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_safetensors_load(&st, path, &err) == BN_OK, "%s", err.msg);
    if (!st) return;
    BNT_CHECK(st->n_tensors == 7);
    BNT_CHECK(st->n_files == 1);
    BNT_CHECK(st->bytes_mapped > 0);
    BNT_CHECK(bn_safetensors_metadata(st, "format") && strcmp(bn_safetensors_metadata(st, "format"), "pt") == 0);
    BNT_CHECK(bn_safetensors_metadata(st, "note") && strcmp(bn_safetensors_metadata(st, "note"), meta[3]) == 0);
    BNT_CHECK(bn_safetensors_metadata(st, "absent") == NULL);
    BNT_CHECK(bn_safetensors_find(st, "absent") == NULL);
    for (i = 0; i < 7; i++) {
        t = bn_safetensors_find(st, ts[i].name);
        BNT_CHECKF(t != NULL, "tensor %s", ts[i].name);
        if (!t) continue;
        BNT_CHECK(t->dtype == ts[i].dtype && t->n_dims == ts[i].n_dims);
        BNT_CHECK(t->shape[0] == ts[i].shape[0]);
        BNT_CHECK(t->nbytes == (size_t)bn_safetensors_numel(&ts[i]) * bn_dtype_size(ts[i].dtype));
        BNT_CHECKF(memcmp(t->data, ts[i].data, t->nbytes) == 0, "bytes of %s", ts[i].name);
    }
    /* the data section starts 8-aligned, so the first tensor is aligned in the file */
    t = bn_safetensors_find(st, "w.f32");
    BNT_CHECK(t && t->offset % 8 == 0);
    BNT_CHECK(t && bn_safetensors_read_f32(t, out, &err) == BN_OK && memcmp(out, f32, sizeof f32) == 0);
    t = bn_safetensors_find(st, "w.bf16");
    BNT_CHECK(t && bn_safetensors_read_f32(t, out, &err) == BN_OK && out[0] == 1.5f && out[1] == -2.25f &&
              out[2] == 3.0f);
    t = bn_safetensors_find(st, "i8");
    BNT_CHECK(t && bn_safetensors_read_f32(t, out, &err) == BN_OK && out[0] == -128.0f && out[3] == 127.0f);
    t = bn_safetensors_find(st, "i32");
    BNT_CHECK(t && bn_safetensors_read_f32(t, out, &err) == BN_OK && out[0] == -7.0f);
    bn_safetensors_free(st);
}

static void test_empty_and_zero_sized(void) {
    const char *path = TMP "/st_empty.safetensors";
    bn_safetensors_tensor t;
    bn_safetensors *st = NULL;
    bn_error err;
    memset(&t, 0, sizeof t);
    t.name = "empty";
    t.dtype = BN_DTYPE_F32;
    t.n_dims = 2;
    t.shape[0] = 0;
    t.shape[1] = 4;
    BNT_CHECKF(bn_safetensors_write(path, &t, 1, NULL, &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_safetensors_load(&st, path, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(st && st->n_tensors == 1 && st->tensors[0].nbytes == 0);
    bn_safetensors_free(st);
    BNT_CHECKF(bn_safetensors_write(path, NULL, 0, NULL, &err) == BN_OK, "%s", err.msg);
    BNT_CHECKF(bn_safetensors_load(&st, path, &err) == BN_OK, "%s", err.msg);
    BNT_CHECK(st && st->n_tensors == 0);
    bn_safetensors_free(st);
}

/* The HF fixture written by the Python safetensors library. */
static void test_hf_fixture(void) {
    bn_safetensors *st = NULL;
    bn_error err;
    const bn_safetensors_tensor *t;
    BNT_CHECKF(bn_safetensors_load(&st, BNT_FIXTURES "/hf/tiny-gqa-tied/packed", &err) == BN_OK, "%s", err.msg);
    if (!st) return;
    BNT_CHECK(bn_safetensors_metadata(st, "format") && strcmp(bn_safetensors_metadata(st, "format"), "pt") == 0);
    t = bn_safetensors_find(st, "model.embed_tokens.weight");
    BNT_CHECK(t && t->dtype == BN_DTYPE_BF16 && t->n_dims == 2 && t->shape[0] == 1024 && t->shape[1] == 192);
    t = bn_safetensors_find(st, "model.layers.2.mlp.down_proj.weight");
    BNT_CHECK(t && t->dtype == BN_DTYPE_U8 && t->shape[0] == 48 && t->shape[1] == 512);
    t = bn_safetensors_find(st, "model.layers.0.self_attn.q_proj.weight_scale");
    BNT_CHECK(t && t->dtype == BN_DTYPE_BF16 && t->n_dims == 1 && t->shape[0] == 1);
    bn_safetensors_free(st);
    /* a file path works too */
    BNT_CHECKF(bn_safetensors_load(&st, BNT_FIXTURES "/hf/tiny-gqa-tied/reference.safetensors", &err) == BN_OK, "%s",
               err.msg);
    t = bn_safetensors_find(st, "input_ids");
    BNT_CHECK(t && t->dtype == BN_DTYPE_I32 && t->shape[0] == 12);
    bn_safetensors_free(st);
}

static void test_sharded(void) {
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6};
    bn_safetensors_tensor t;
    bn_safetensors *st = NULL;
    bn_error err;
    const bn_safetensors_tensor *ta, *tb;
    FILE *f;
    mkdir(TMP "/sharded", 0755);
    memset(&t, 0, sizeof t);
    t.name = "a"; t.dtype = BN_DTYPE_F32; t.n_dims = 1; t.shape[0] = 4; t.data = a;
    BNT_CHECK(bn_safetensors_write(TMP "/sharded/model-00001-of-00002.safetensors", &t, 1, NULL, &err) == BN_OK);
    t.name = "b"; t.shape[0] = 2; t.data = b;
    BNT_CHECK(bn_safetensors_write(TMP "/sharded/model-00002-of-00002.safetensors", &t, 1, NULL, &err) == BN_OK);
    f = fopen(TMP "/sharded/model.safetensors.index.json", "wb");
    fputs("{\"metadata\": {\"total_size\": 24}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", "
          "\"b\": \"model-00002-of-00002.safetensors\"}}", f);
    fclose(f);
    BNT_CHECKF(bn_safetensors_load(&st, TMP "/sharded", &err) == BN_OK, "%s", err.msg);
    if (!st) return;
    BNT_CHECK(st->n_files == 2 && st->n_tensors == 2);
    ta = bn_safetensors_find(st, "a");
    tb = bn_safetensors_find(st, "b");
    BNT_CHECK(ta && tb && ta->file != tb->file);
    BNT_CHECK(ta && memcmp(ta->data, a, sizeof a) == 0);
    BNT_CHECK(tb && memcmp(tb->data, b, sizeof b) == 0);
    bn_safetensors_free(st);
    /* the index file itself works too */
    BNT_CHECKF(bn_safetensors_load(&st, TMP "/sharded/model.safetensors.index.json", &err) == BN_OK, "%s", err.msg);
    bn_safetensors_free(st);
    /* an index naming a tensor its shard lacks */
    mkdir(TMP "/sharded_bad", 0755);
    t.name = "a"; t.shape[0] = 4; t.data = a;
    BNT_CHECK(bn_safetensors_write(TMP "/sharded_bad/s1.safetensors", &t, 1, NULL, &err) == BN_OK);
    f = fopen(TMP "/sharded_bad/model.safetensors.index.json", "wb");
    fputs("{\"weight_map\": {\"a\": \"s1.safetensors\", \"zz\": \"s1.safetensors\"}}", f);
    fclose(f);
    expect_error(TMP "/sharded_bad/model.safetensors.index.json", BN_ERR_MISSING, "'zz'", "s1.safetensors");
    /* a missing shard */
    f = fopen(TMP "/sharded_bad/model.safetensors.index.json", "wb");
    fputs("{\"weight_map\": {\"a\": \"nope.safetensors\"}}", f);
    fclose(f);
    expect_error(TMP "/sharded_bad", BN_ERR_IO, "nope.safetensors", NULL);
    /* an index that is not JSON */
    f = fopen(TMP "/sharded_bad/model.safetensors.index.json", "wb");
    fputs("{\"weight_map\": {\"a\": }", f);
    fclose(f);
    expect_error(TMP "/sharded_bad/model.safetensors.index.json", BN_ERR_FORMAT, "byte", NULL);
}

static void test_bad_header_length(void) {
    const char *path = TMP "/bad_hlen.safetensors";
    write_raw(path, "{}", 1000, 0); /* says 1000 bytes, file has 10 */
    expect_error(path, BN_ERR_FORMAT, "larger than the file", "1000");
    write_raw(path, "{}", (uint64_t)200 << 20, 0); /* 200 MB */
    expect_error(path, BN_ERR_FORMAT, "100 MB", NULL);
    write_raw(path, "", 0, 0);
    {
        FILE *f = fopen(path, "wb");
        fputs("abc", f); /* shorter than the 8-byte length */
        fclose(f);
    }
    expect_error(path, BN_ERR_FORMAT, "too short", NULL);
    expect_error(TMP "/does_not_exist.safetensors", BN_ERR_IO, NULL, NULL);
}

static void test_bad_json(void) {
    const char *path = TMP "/bad_json.safetensors";
    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]", 4);
    expect_error(path, BN_ERR_FORMAT, "JSON", "byte");
    write_st(path, "[1, 2]", 0);
    expect_error(path, BN_ERR_FORMAT, "not a JSON object", NULL);
    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4);
    expect_error(path, BN_ERR_FORMAT, "'a'", "data_offsets");
    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4);
    expect_error(path, BN_ERR_FORMAT, "'a'", "shape");
    write_st(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4);
    expect_error(path, BN_ERR_FORMAT, "'a'", "data_offsets");
    write_st(path, "{\"__metadata__\": {\"n\": 3}}", 0);
    expect_error(path, BN_ERR_FORMAT, "__metadata__", NULL);
}

static void test_unknown_dtype(void) {
    const char *path = TMP "/bad_dtype.safetensors";
    write_st(path, "{\"w\": {\"dtype\": \"Q4_K\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2);
    expect_error(path, BN_ERR_UNSUPPORTED, "'w'", "Q4_K");
}

static void test_size_mismatch(void) {
    const char *path = TMP "/bad_size.safetensors";
    /* 2 x 3 F32 is 24 bytes, the offsets give 20 */
    write_st(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}", 24);
    expect_error(path, BN_ERR_FORMAT, "'w'", "24 bytes");
}

static void test_out_of_bounds(void) {
    const char *path = TMP "/bad_bounds.safetensors";
    write_st(path, "{\"w\": {\"dtype\": \"BF16\", \"shape\": [8], \"data_offsets\": [4, 20]}}", 12);
    expect_error(path, BN_ERR_FORMAT, "'w'", "past the data section");
}

static void test_overlap(void) {
    const char *path = TMP "/bad_overlap.safetensors";
    write_st(path,
             "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
             " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
             12);
    expect_error(path, BN_ERR_FORMAT, "overlap", "'b'");
}

static void test_duplicate_across_shards(void) {
    float a[1] = {1};
    bn_safetensors_tensor t;
    bn_error err;
    FILE *f;
    mkdir(TMP "/sharded_dup", 0755);
    memset(&t, 0, sizeof t);
    t.name = "a"; t.dtype = BN_DTYPE_F32; t.n_dims = 1; t.shape[0] = 1; t.data = a;
    BNT_CHECK(bn_safetensors_write(TMP "/sharded_dup/s1.safetensors", &t, 1, NULL, &err) == BN_OK);
    BNT_CHECK(bn_safetensors_write(TMP "/sharded_dup/s2.safetensors", &t, 1, NULL, &err) == BN_OK);
    f = fopen(TMP "/sharded_dup/model.safetensors.index.json", "wb");
    fputs("{\"weight_map\": {\"a\": \"s1.safetensors\", \"b\": \"s2.safetensors\"}}", f);
    fclose(f);
    expect_error(TMP "/sharded_dup", BN_ERR_FORMAT, "'a'", "appears twice");
}

/* Random damage to a real header: every open either fails with a message or
   gives tensors whose bytes lie inside the file (ASan checks the reads). */
static void test_fuzz_header(void) {
    const char *path = TMP "/st_fuzz.safetensors";
    char *orig;
    size_t len, hlen, i;
    bn_error err;
    uint32_t seed = 12345;
    int iter, opened = 0, failed = 0;
    BNT_CHECK(bn_read_file(BNT_FIXTURES "/hf/tiny-mha-untied/packed/model.safetensors", &orig, &len, &err) == BN_OK);
    if (!orig) return;
    hlen = (size_t)(unsigned char)orig[0] | ((size_t)(unsigned char)orig[1] << 8);
    for (iter = 0; iter < 300; iter++) {
        char *buf = (char *)malloc(len);
        size_t n = len;
        bn_safetensors *st = NULL;
        int k, flips = 1 + iter % 4;
        memcpy(buf, orig, len);
        for (k = 0; k < flips; k++) {
            seed = seed * 1103515245u + 12345u;
            i = (seed >> 8) % (8 + hlen);
            seed = seed * 1103515245u + 12345u;
            buf[i] = (char)(iter % 3 == 0 ? "0123456789,:[]{}\"\\ "[(seed >> 8) % 19] : (char)(seed >> 16));
        }
        if (iter % 5 == 0) n = 8 + (size_t)(seed >> 4) % (len - 8); /* truncated */
        {
            FILE *f = fopen(path, "wb");
            fwrite(buf, 1, n, f);
            fclose(f);
        }
        if (bn_safetensors_load(&st, path, &err) == BN_OK) {
            int t;
            opened++;
            for (t = 0; t < st->n_tensors; t++) {
                const bn_safetensors_tensor *ts = &st->tensors[t];
                const uint8_t *p = (const uint8_t *)ts->data;
                size_t j, sum = 0;
                BNT_CHECK(ts->offset + ts->nbytes <= st->files[0].size);
                for (j = 0; j < ts->nbytes; j++) sum += p[j];
                (void)sum;
            }
            bn_safetensors_free(st);
        } else {
            failed++;
            BNT_CHECK(strlen(err.msg) > 0);
        }
        free(buf);
    }
    printf("    300 damaged files: %d opened, %d refused\n", opened, failed);
    bn_free(orig);
}

int main(void) {
    make_tmp();
    BNT_RUN(test_round_trip);
    BNT_RUN(test_empty_and_zero_sized);
    BNT_RUN(test_hf_fixture);
    BNT_RUN(test_sharded);
    BNT_RUN(test_bad_header_length);
    BNT_RUN(test_bad_json);
    BNT_RUN(test_unknown_dtype);
    BNT_RUN(test_size_mismatch);
    BNT_RUN(test_out_of_bounds);
    BNT_RUN(test_overlap);
    BNT_RUN(test_duplicate_across_shards);
    BNT_RUN(test_fuzz_header);
    return bnt_finish("safetensors");
}
