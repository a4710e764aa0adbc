/* jsonw.c: the JSON writer (see jsonw.h). */
#include "jsonw.h"
#include "../bitnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(jw *w) {
    memset(w, 0, sizeof *w);
    w->first[0] = 1;
}

void jw_free(jw *w) {
    free(w->p);
    jw_init(w);
}

void jw_reset(jw *w) {
    char *p = w->p;
    size_t cap = w->cap;
    jw_init(w);
    w->p = p;
    w->cap = cap;
    if (p) p[0] = 0;
}

static int jw_reserve(jw *w, size_t extra) {
    size_t cap;
    char *p;
    if (w->oom) return 0;
    if (w->len + extra + 1 <= w->cap) return 1;
    cap = w->cap ? w->cap : 256;
    while (cap < w->len + extra + 1) cap *= 2;
    p = (char *)realloc(w->p, cap);
    if (!p) {
        w->oom = 1;
        return 0;
    }
    w->p = p;
    w->cap = cap;
    return 1;
}

void jw_raw(jw *w, const char *s, size_t n) {
    if (!jw_reserve(w, n)) return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = 0;
}

/* Before a value: a comma unless it is the first at this level or follows a key. */
static void jw_sep(jw *w) {
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (!w->first[w->depth]) jw_raw(w, ",", 1);
    w->first[w->depth] = 0;
}

static void jw_open(jw *w, char c) {
    jw_sep(w);
    jw_raw(w, &c, 1);
    if (w->depth + 1 < JW_MAX_DEPTH) w->depth++;
    w->first[w->depth] = 1;
}

static void jw_close(jw *w, char c) {
    if (w->depth > 0) w->depth--;
    jw_raw(w, &c, 1);
}

void jw_obj(jw *w) { jw_open(w, '{'); }
void jw_obj_end(jw *w) { jw_close(w, '}'); }
void jw_arr(jw *w) { jw_open(w, '['); }
void jw_arr_end(jw *w) { jw_close(w, ']'); }

void jw_keyn(jw *w, const char *key, size_t n) {
    jw_sep(w);
    jw_raw(w, "\"", 1);
    jw_escape(w, key, n);
    jw_raw(w, "\":", 2);
    w->after_key = 1;
}

void jw_key(jw *w, const char *key) { jw_keyn(w, key, strlen(key)); }

int utf8_valid(const char *s, size_t n, size_t *bad) {
    size_t i = 0;
    while (i < n) {
        size_t k;
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        k = bn_utf8_char_len(s + i, n - i);
        if (!k) {
            if (bad) *bad = i;
            return 0;
        }
        i += k;
    }
    return 1;
}

void jw_escape(jw *w, const char *s, size_t n) {
    size_t i = 0, run = 0; /* s[i - run, i) is copied as it is */
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[8];
        size_t k = 1;
        if (c == '"') esc = "\\\"";
        else if (c == '\\') esc = "\\\\";
        else if (c == '\n') esc = "\\n";
        else if (c == '\r') esc = "\\r";
        else if (c == '\t') esc = "\\t";
        else if (c < 0x20 || c == 0x7f) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        } else if (c >= 0x80) {
            k = bn_utf8_char_len(s + i, n - i);
            if (!k) {
                esc = "\xef\xbf\xbd"; /* U+FFFD for the invalid byte */
                k = 1;
            }
        }
        if (esc) {
            jw_raw(w, s + i - run, run);
            jw_raw(w, esc, strlen(esc));
            run = 0;
        } else {
            run += k;
        }
        i += k;
    }
    jw_raw(w, s + i - run, run);
}

void jw_str(jw *w, const char *s, size_t n) {
    jw_sep(w);
    jw_raw(w, "\"", 1);
    jw_escape(w, s, n);
    jw_raw(w, "\"", 1);
}

void jw_cstr(jw *w, const char *s) {
    if (s) jw_str(w, s, strlen(s));
    else jw_null(w);
}

void jw_int(jw *w, long long v) {
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", v);
    jw_sep(w);
    jw_raw(w, b, (size_t)n);
}

void jw_num(jw *w, double v) {
    char b[40];
    int n = 0, prec;
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    for (prec = 6; prec <= 17; prec++) { /* the shortest that reads back as the same float, else double */
        n = snprintf(b, sizeof b, "%.*g", prec, v);
        if (prec < 9 ? (float)strtod(b, NULL) == (float)v && (double)(float)v == v : strtod(b, NULL) == v) break;
    }
    jw_sep(w);
    jw_raw(w, b, (size_t)n);
}

void jw_bool(jw *w, int v) {
    jw_sep(w);
    jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(jw *w) {
    jw_sep(w);
    jw_raw(w, "null", 4);
}
