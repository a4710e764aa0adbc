/* The GBNF parser and the matcher: any bytes compile or fail with an error
   (line and column); a compiled grammar then follows any bytes without
   crashing or hanging. The input is "GRAMMAR" or "GRAMMAR\n%%\nTEXT": the
   text (or, without one, the grammar's own bytes) is fed byte by byte, then
   whole from the start. */
#include "../../bitnet.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *src = (const char *)data, *text = src, *sep = NULL;
    size_t glen = size, tlen = size, i;
    bn_grammar *g = NULL;
    bn_grammar_matcher *m = NULL;
    bn_error err;
    for (i = 0; i + 4 <= size && !sep; i++)
        if (!memcmp(src + i, "\n%%\n", 4)) sep = src + i;
    if (sep) {
        glen = (size_t)(sep - src);
        text = sep + 4;
        tlen = size - glen - 4;
    }
    if (bn_grammar_parse(&g, src, glen, NULL, &err) != BN_OK) return 0;
    if (bn_grammar_matcher_new(&m, g, &err) == BN_OK) {
        for (i = 0; i < tlen && bn_grammar_matcher_accept_bytes(m, text + i, 1); i++) {
            (void)bn_grammar_matcher_can_end(m);
            (void)bn_grammar_matcher_can_continue(m);
        }
        bn_grammar_matcher_reset(m);
        (void)bn_grammar_matcher_accept_bytes(m, text, tlen);
        bn_grammar_matcher_free(m);
    }
    bn_grammar_free(g);
    return 0;
}
