/* Streaming text without a model: the UTF-8 stream holds a character split
   across tokens until it is whole; the stop stream finds stop strings even when
   they span pieces, and nothing of a stop string (or what follows it) is shown. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

/* A byte-level tokenizer written here: ids 0..255 are the bytes (<0xNN>,
   byte_fallback), 256 is "ok". */
static bn_tokenizer *byte_tokenizer(void) {
    char json[8192];
    size_t n = 0;
    int b;
    bn_tokenizer *tok = NULL;
    bn_error err;
    n += (size_t)sprintf(json + n, "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"merges\": [], \"vocab\": {");
    for (b = 0; b < 256; b++) n += (size_t)sprintf(json + n, "\"<0x%02X>\": %d, ", b, b);
    n += (size_t)sprintf(json + n, "\"ok\": 256}}, \"decoder\": {\"type\": \"Sequence\", \"decoders\": "
                                   "[{\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}}");
    BNT_CHECKF(bn_tokenizer_load_memory(&tok, json, n, NULL, 0, "bytes", &err) == BN_OK, "%s", err.msg);
    return tok;
}

/* Feed ids to a UTF-8 stream; outs[i] gets the text of push i, all the whole text with the flush. */
static void utf8_pieces(const bn_tokenizer *tok, const int32_t *ids, int n, char outs[][32], char *all) {
    bn_utf8_stream us;
    const char *t;
    size_t len;
    int i;
    all[0] = 0;
    bn_utf8_stream_init(&us, tok, 0);
    for (i = 0; i < n; i++) {
        BNT_CHECK(bn_utf8_stream_push(&us, ids[i], &t, &len, NULL) == BN_OK);
        memcpy(outs[i], t, len);
        outs[i][len] = 0;
        strcat(all, outs[i]);
    }
    BNT_CHECK(bn_utf8_stream_flush(&us, &t, &len, NULL) == BN_OK);
    strncat(all, t, len);
    bn_utf8_stream_free(&us);
}

/* The UTF-8 stream holds back a character split across tokens until it is whole. */
static void test_utf8_stream_split_characters(void) {
    static const int32_t ids[] = {'h', 0xE2, 0x82, 0xAC, '!', 0xF0, 0x9F, 0x98, 0x80};
    bn_tokenizer *tok = byte_tokenizer();
    char outs[9][32], all[128];
    if (!tok) return;
    utf8_pieces(tok, ids, 9, outs, all);
    BNT_CHECK(strcmp(outs[0], "h") == 0);
    BNT_CHECK(outs[1][0] == 0 && outs[2][0] == 0); /* held: an incomplete euro sign */
    BNT_CHECK(strcmp(outs[3], "\xE2\x82\xAC") == 0 && strcmp(outs[4], "!") == 0);
    BNT_CHECK(outs[5][0] == 0 && outs[6][0] == 0 && outs[7][0] == 0);
    BNT_CHECK(strcmp(outs[8], "\xF0\x9F\x98\x80") == 0);
    BNT_CHECK(strcmp(all, "h\xE2\x82\xAC!\xF0\x9F\x98\x80") == 0);
    bn_tokenizer_free(tok);
}

/* At the end, an incomplete character comes out as U+FFFD, as HF's decode gives it. */
static void test_utf8_stream_flush_incomplete(void) {
    static const int32_t ids[] = {256, 0xE2, 0x82};
    bn_tokenizer *tok = byte_tokenizer();
    char outs[3][32], all[64];
    if (!tok) return;
    utf8_pieces(tok, ids, 3, outs, all);
    BNT_CHECK(strcmp(outs[0], "ok") == 0 && outs[1][0] == 0 && outs[2][0] == 0);
    BNT_CHECK(strcmp(all, "ok\xEF\xBF\xBD\xEF\xBF\xBD") == 0); /* one per byte token (HF ByteFallback) */
    bn_tokenizer_free(tok);
}

/* Push pieces one by one; collect what comes out of each push. */
static int stream_pieces(const char *const *stops, int n_stops, const char **pieces, int n, char outs[][32],
                         char *all) {
    bn_stop_stream ts;
    int i, stop = 0;
    all[0] = 0;
    bn_stop_stream_init(&ts, stops, n_stops);
    for (i = 0; i < n && !stop; i++) {
        const char *t;
        size_t len;
        BNT_CHECK(bn_stop_stream_push(&ts, pieces[i], strlen(pieces[i]), &t, &len, &stop, NULL) == BN_OK);
        memcpy(outs[i], t, len);
        outs[i][len] = 0;
        strcat(all, outs[i]);
    }
    if (!stop) {
        const char *t;
        size_t len;
        bn_stop_stream_flush(&ts, &t, &len);
        strncat(all, t, len);
    }
    bn_stop_stream_free(&ts);
    return stop ? i : -1; /* pieces consumed when the stop string completed */
}

static void test_stop_strings_span_tokens(void) {
    const char *stops[] = {"</s>", "END"};
    const char *p1[] = {"ab<", "/", "s>tail"};
    const char *p2[] = {"xE", "N", "Q", "zz"};
    const char *p3[] = {"no", " stop", " E"};
    char outs[4][32], all[128];
    BNT_CHECK(stream_pieces(stops, 2, p1, 3, outs, all) == 3);
    BNT_CHECK(strcmp(outs[0], "ab") == 0 && outs[1][0] == 0 && outs[2][0] == 0);
    BNT_CHECK(strcmp(all, "ab") == 0);                     /* nothing of the stop string nor after it */
    BNT_CHECK(stream_pieces(stops, 2, p2, 4, outs, all) == -1);
    BNT_CHECK(strcmp(outs[0], "x") == 0 && outs[1][0] == 0); /* "E", "EN" may become END */
    BNT_CHECK(strcmp(outs[2], "ENQ") == 0);
    BNT_CHECK(strcmp(all, "xENQzz") == 0);
    BNT_CHECK(stream_pieces(stops, 2, p3, 3, outs, all) == -1);
    BNT_CHECK(strcmp(all, "no stop E") == 0);              /* a held tail is flushed at the end */
}

static void test_stop_string_overlapping(void) {
    const char *stops[] = {"aab"};
    const char *p[] = {"a", "a", "a", "b", "c"};
    char outs[5][32], all[64];
    BNT_CHECK(stream_pieces(stops, 1, p, 5, outs, all) == 4);
    BNT_CHECK(strcmp(all, "a") == 0);
}

static void test_stop_inside_one_piece_with_utf8(void) {
    const char *stops[] = {"\xC3\xA9!"};
    const char *p[] = {"caf\xC3", "\xA9!x"};
    char outs[2][32], all[64];
    BNT_CHECK(stream_pieces(stops, 1, p, 2, outs, all) == 2);
    BNT_CHECK(strcmp(all, "caf") == 0);
}

/* An empty stop string (`bitnet run --stop ""`) never matches and holds
   nothing back; nor does a NULL entry. The tail check once computed
   strlen("") - 1, which wrapped, and read past the 1-byte string (ASan). */
static void test_empty_stop_string(void) {
    const char *empty[] = {""};
    const char *mixed[] = {"", NULL, "b"};
    const char *p[] = {"ab"};
    const char *p2[] = {"xy", "z"};
    char outs[2][32], all[64];
    BNT_CHECK(stream_pieces(empty, 1, p, 1, outs, all) == -1);
    BNT_CHECK(strcmp(outs[0], "ab") == 0 && strcmp(all, "ab") == 0);
    BNT_CHECK(stream_pieces(mixed, 3, p, 1, outs, all) == 1); /* the other stop strings still work */
    BNT_CHECK(strcmp(all, "a") == 0);
    BNT_CHECK(stream_pieces(mixed, 2, p2, 2, outs, all) == -1);
    BNT_CHECK(strcmp(outs[0], "xy") == 0 && strcmp(outs[1], "z") == 0);
}

int main(void) {
    BNT_RUN(test_utf8_stream_split_characters);
    BNT_RUN(test_utf8_stream_flush_incomplete);
    BNT_RUN(test_stop_strings_span_tokens);
    BNT_RUN(test_empty_stop_string);
    BNT_RUN(test_stop_string_overlapping);
    BNT_RUN(test_stop_inside_one_piece_with_utf8);
    return bnt_finish("test_stream");
}
