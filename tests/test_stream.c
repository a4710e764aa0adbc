/* Text streaming without a model: UTF-8 characters split across tokens are
   held until whole, stop strings are found even when they span tokens, and
   nothing of a stop string (or what follows it) is ever shown. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

static void test_utf8_complete_prefix(void) {
    BNT_CHECK(bn_utf8_complete_prefix("abc", 3) == 3);
    BNT_CHECK(bn_utf8_complete_prefix("", 0) == 0);
    BNT_CHECK(bn_utf8_complete_prefix("a\xC3", 2) == 1);             /* é split after its lead byte */
    BNT_CHECK(bn_utf8_complete_prefix("a\xC3\xA9", 3) == 3);
    BNT_CHECK(bn_utf8_complete_prefix("\xE2\x82", 2) == 0);          /* € missing its last byte */
    BNT_CHECK(bn_utf8_complete_prefix("x\xE2\x82\xAC", 4) == 4);
    BNT_CHECK(bn_utf8_complete_prefix("\xF0\x9F\x98", 3) == 0);      /* 4-byte emoji, 3 bytes in */
    BNT_CHECK(bn_utf8_complete_prefix("\xF0\x9F\x98\x80", 4) == 4);
    BNT_CHECK(bn_utf8_complete_prefix("a\x80", 2) == 2);             /* stray continuation: passed on */
    BNT_CHECK(bn_utf8_complete_prefix("a\xFF", 2) == 2);             /* invalid byte: passed on */
    BNT_CHECK(bn_utf8_complete_prefix("\xC3" "a", 2) == 2);          /* broken sequence: passed on */
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

static void test_stream_split_characters(void) {
    const char *pieces[] = {"h", "\xE2", "\x82", "\xAC!", "\xF0\x9F", "\x98\x80"};
    char outs[6][32], all[128];
    BNT_CHECK(stream_pieces(NULL, 0, pieces, 6, outs, all) == -1);
    BNT_CHECK(strcmp(outs[0], "h") == 0);
    BNT_CHECK(outs[1][0] == 0 && outs[2][0] == 0);      /* held: incomplete € */
    BNT_CHECK(strcmp(outs[3], "\xE2\x82\xAC!") == 0);
    BNT_CHECK(outs[4][0] == 0);
    BNT_CHECK(strcmp(outs[5], "\xF0\x9F\x98\x80") == 0);
    BNT_CHECK(strcmp(all, "h\xE2\x82\xAC!\xF0\x9F\x98\x80") == 0);
}

static void test_stream_flush_incomplete(void) {
    const char *pieces[] = {"ok", "\xE2\x82"};
    char outs[2][32], all[64];
    stream_pieces(NULL, 0, pieces, 2, outs, all);
    BNT_CHECK(strcmp(outs[1], "") == 0);
    BNT_CHECK(strcmp(all, "ok\xE2\x82") == 0); /* at the end what is held is handed out as is */
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
    BNT_RUN(test_utf8_complete_prefix);
    BNT_RUN(test_stream_split_characters);
    BNT_RUN(test_stream_flush_incomplete);
    BNT_RUN(test_stop_strings_span_tokens);
    BNT_RUN(test_empty_stop_string);
    BNT_RUN(test_stop_string_overlapping);
    BNT_RUN(test_stop_inside_one_piece_with_utf8);
    return bnt_finish("test_stream");
}
