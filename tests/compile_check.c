/* Compiled by `make test` as C99 and C++ with -Wall -Wextra -Wpedantic -Werror
   (gcc, clang, g++, clang++), with and without BITNET_STATIC / BITNET_NO_THREADS:
   the header must build warning-free everywhere. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"

int main(void) {
    bn_error err;
    bn_json_doc doc;
    const char text[] = "{\"ok\": true}";
    if (bn_json_parse(&doc, text, sizeof text - 1, "inline", &err) != BN_OK) return 1;
    bn_json_free(&doc);
    return 0;
}
