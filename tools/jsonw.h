/* jsonw.h: a JSON writer into a growable buffer, for the server's responses.
   Commas are placed by the writer: call jw_key before each member of an object,
   and the value functions in order. Strings are escaped, and bytes that are not
   valid UTF-8 are written as U+FFFD, so the output is always valid JSON. After an
   allocation failure the writer stops growing and jw->oom is set. */
#ifndef BITNET_JSONW_H
#define BITNET_JSONW_H

#include <stddef.h>

#define JW_MAX_DEPTH 32

typedef struct jw {
    char *p;     /* NUL-terminated output (may be NULL while empty) */
    size_t len, cap;
    int oom;
    int depth;
    unsigned char first[JW_MAX_DEPTH]; /* no element written yet at this depth */
    int after_key;
} jw;

void jw_init(jw *w);
void jw_free(jw *w);
void jw_reset(jw *w); /* empty again, keeping the memory */
void jw_raw(jw *w, const char *s, size_t n); /* bytes as they are (no comma handling) */
void jw_obj(jw *w);
void jw_obj_end(jw *w);
void jw_arr(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);
void jw_keyn(jw *w, const char *key, size_t n); /* a key that is not NUL-terminated (escaped like strings) */
void jw_str(jw *w, const char *s, size_t n);
void jw_cstr(jw *w, const char *s); /* NULL writes null */
void jw_int(jw *w, long long v);
void jw_num(jw *w, double v); /* shortest form that reads back the same float; not finite: null */
void jw_bool(jw *w, int v);
void jw_null(jw *w);

/* Appends s[0..n) to w as the body of a JSON string (escaped, without quotes). */
void jw_escape(jw *w, const char *s, size_t n);

/* Length of the valid UTF-8 character at s[0..n), or 0 when the bytes there are not one. */
/* Whether s[0..n) is valid UTF-8; *bad gets the offset of the first invalid byte. */
int utf8_valid(const char *s, size_t n, size_t *bad);

#endif
