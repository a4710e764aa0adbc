/* The text stream and stop strings, against an oracle written here: the
   input is up to 4 stop strings, then generated text cut into chunks (parts
   separated by "|"; the first part holds the stop strings separated by ","
   and may be empty). Generation stops after the first chunk that completes a
   stop string; what the stream emits, plus its flush, must be exactly the
   text before the earliest stop string in the text so far, never a byte of one. */
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *stops_text, *stops[4], *out, *text;
    const uint8_t *p;
    size_t n, out_len = 0, text_len = 0, i, first = (size_t)-1;
    int n_stop = 0, k, stop_hit = 0;
    bn_stop_stream ts;
    bn_error err;
    p = fuzz_part(data, size, "|", 0, &n);
    stops_text = fuzz_strdup(p, n);
    stops[n_stop++] = stops_text; /* "" is a stop string too: it must never match */
    for (i = 0; i < n && n_stop < 4; i++)
        if (stops_text[i] == ',') {
            stops_text[i] = 0;
            stops[n_stop++] = stops_text + i + 1;
        }
    out = (char *)malloc(size + 1);
    text = (char *)malloc(size + 1);
    if (!out || !text) abort();
    bn_stop_stream_init(&ts, (const char *const *)stops, n_stop);
    for (k = 1; !stop_hit && (p = fuzz_part(data, size, "|", k, &n)) != NULL; k++) {
        const char *t;
        size_t len;
        int j;
        memcpy(text + text_len, p, n);
        text_len += n;
        if (bn_stop_stream_push(&ts, (const char *)p, n, &t, &len, &stop_hit, &err) != BN_OK) abort();
        memcpy(out + out_len, t, len);
        out_len += len;
        /* the oracle: the earliest occurrence of a non-empty stop string in the text so far */
        for (j = 0; j < n_stop; j++) {
            size_t m = strlen(stops[j]);
            for (i = 0; m && i + m <= text_len && i < first; i++)
                if (memcmp(text + i, stops[j], m) == 0) first = i;
        }
        if ((first != (size_t)-1) != (stop_hit != 0)) abort();
    }
    if (!stop_hit) {
        const char *t;
        size_t len;
        bn_stop_stream_flush(&ts, &t, &len);
        memcpy(out + out_len, t, len);
        out_len += len;
    }
    if (out_len != (first != (size_t)-1 ? first : text_len) || memcmp(out, text, out_len) != 0) abort();
    bn_stop_stream_free(&ts);
    free(out);
    free(text);
    free(stops_text);
    return 0;
}
