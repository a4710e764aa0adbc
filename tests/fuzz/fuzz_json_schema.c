/* JSON Schema -> GBNF: any bytes convert or fail with an error naming the
   keyword; what converts must be a grammar the parser accepts (anything else
   is a bug: abort), and its matcher follows the schema's own bytes. */
#include "../../bitnet.h"
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *gbnf = NULL;
    size_t len = 0;
    bn_grammar *g = NULL;
    bn_grammar_matcher *m = NULL;
    bn_error err;
    if (bn_json_schema_to_gbnf((const char *)data, size, &gbnf, &len, &err) != BN_OK) return 0;
    if (bn_grammar_parse(&g, gbnf, len, NULL, &err) != BN_OK) {
        fprintf(stderr, "the converter wrote a grammar its parser refuses: %s\n%s\n", err.msg, gbnf);
        abort();
    }
    if (bn_grammar_matcher_new(&m, g, &err) == BN_OK) {
        (void)bn_grammar_matcher_accept_bytes(m, (const char *)data, size);
        bn_grammar_matcher_free(m);
    }
    bn_grammar_free(g);
    bn_free(gbnf);
    return 0;
}
