/* bitnet serve's HTTP/1.1 request parser (tools/http.c): any bytes give a complete head, a
   request for more, or a status to answer with; a complete head's fields lie inside the input,
   and a chunked body after it measures and decodes within its bounds. */
#include "../../tools/http.c"

#include <stdint.h>
#include <stdlib.h>

static void chunked(const char *p, size_t n) {
    size_t used = 0, len = 0;
    char *out;
    if (http_chunked_body(p, n, 1 << 16, &used, &len, NULL) != HTTP_DONE) return;
    if (used > n || len > used) abort();
    out = (char *)malloc(len + 1);
    if (!out) return;
    if (http_chunked_body(p, n, 1 << 16, &used, &len, out) != HTTP_DONE) abort(); /* the same answer twice */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    http_request rq;
    size_t k, n;
    int st = http_parse_request(s, size, 4096, &rq), i;
    if (st == HTTP_DONE) {
        if (rq.head_len > size || rq.path < s || rq.path + rq.path_len > s + size) abort();
        for (i = 0; i < rq.n_headers; i++) {
            const http_header *h = &rq.headers[i];
            if (h->name < s || h->value + h->value_len > s + size) abort();
        }
        (void)http_header_value(&rq, "content-type", &n);
        if (rq.chunked) chunked(s + rq.head_len, size - rq.head_len);
        /* every shorter prefix of a complete head is incomplete, or an error found earlier */
        k = rq.head_len / 2;
        st = http_parse_request(s, k, 4096, &rq);
        if (st == HTTP_DONE) abort();
    } else if (st != HTTP_INCOMPLETE && (st < 400 || st > 505)) {
        abort();
    }
    chunked(s, size);
    return 0;
}
