/* hub_parse.c: parsers of what the Hub answers. Pure functions on bytes, no I/O: every input
   here comes from the network, so each one is bounded, and tests/fuzz/hub_parse.c runs them
   on arbitrary bytes. */
#include "../bitnet.h"
#include "hub.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hub_response_init(hub_response *h) {
    memset(h, 0, sizeof *h);
    h->content_length = h->linked_size = h->range_start = h->range_total = -1;
}

/* Copies n bytes (cut to cap - 1) and terminates. */
static void copy_field(char *dst, size_t cap, const char *src, size_t n) {
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static int name_is(const char *name, size_t n, const char *want) {
    size_t i;
    if (strlen(want) != n) return 0;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)name[i]) != tolower((unsigned char)want[i])) return 0;
    return 1;
}

/* A non-negative decimal that fits a long long, else -1. */
static long long parse_size(const char *s, size_t n) {
    long long v = 0;
    size_t i;
    if (n == 0 || n > 18) return -1;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

void hub_etag_normalize(const char *in, size_t n, char *out, size_t cap) {
    if (n >= 2 && in[0] == 'W' && in[1] == '/') in += 2, n -= 2;
    if (n >= 2 && in[0] == '"' && in[n - 1] == '"') in += 1, n -= 2;
    copy_field(out, cap, in, n);
}

/* "bytes 100-199/1234" or "bytes * /1234" (no space): the start and the total. */
static void parse_content_range(hub_response *h, const char *v, size_t n) {
    const char *slash = (const char *)memchr(v, '/', n), *dash;
    if (n < 6 || memcmp(v, "bytes ", 6) != 0 || !slash) return;
    h->range_total = parse_size(slash + 1, (size_t)(v + n - slash - 1));
    dash = (const char *)memchr(v + 6, '-', (size_t)(slash - v - 6));
    h->range_start = dash ? parse_size(v + 6, (size_t)(dash - v - 6)) : -1;
}

void hub_parse_header_line(hub_response *h, const char *line, size_t len) {
    const char *colon, *v;
    size_t n, vn;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a status line: a new response begins */
        const char *sp = (const char *)memchr(line, ' ', len);
        hub_response_init(h);
        if (sp && (size_t)(line + len - sp) >= 4) {
            long long code = parse_size(sp + 1, 3);
            h->status = code >= 100 && code <= 599 ? (long)code : 0;
        }
        return;
    }
    colon = (const char *)memchr(line, ':', len);
    if (!colon) return;
    n = (size_t)(colon - line);
    v = colon + 1;
    vn = (size_t)(line + len - v);
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
    if (name_is(line, n, "location")) copy_field(h->location, sizeof h->location, v, vn);
    else if (name_is(line, n, "etag")) hub_etag_normalize(v, vn, h->etag, sizeof h->etag);
    else if (name_is(line, n, "x-linked-etag")) hub_etag_normalize(v, vn, h->linked_etag, sizeof h->linked_etag);
    else if (name_is(line, n, "x-repo-commit")) copy_field(h->repo_commit, sizeof h->repo_commit, v, vn);
    else if (name_is(line, n, "x-error-code")) copy_field(h->error_code, sizeof h->error_code, v, vn);
    else if (name_is(line, n, "x-error-message")) copy_field(h->error_message, sizeof h->error_message, v, vn);
    else if (name_is(line, n, "content-type")) copy_field(h->content_type, sizeof h->content_type, v, vn);
    else if (name_is(line, n, "content-length")) h->content_length = parse_size(v, vn);
    else if (name_is(line, n, "x-linked-size")) h->linked_size = parse_size(v, vn);
    else if (name_is(line, n, "content-range")) parse_content_range(h, v, vn);
}

/* ---- URLs ---- */

/* Length of "scheme://host[:port]" at the start of url, or 0 when it has no scheme. */
static size_t origin_len(const char *url) {
    const char *p = strstr(url, "://"), *q;
    size_t i;
    if (!p || p == url) return 0;
    for (i = 0; url + i < p; i++)
        if (!isalpha((unsigned char)url[i])) return 0;
    q = p + 3;
    while (*q && *q != '/' && *q != '?' && *q != '#') q++;
    return (size_t)(q - url);
}

int hub_url_same_origin(const char *a, const char *b) {
    size_t na = origin_len(a), nb = origin_len(b), i;
    if (!na || na != nb) return 0;
    for (i = 0; i < na; i++)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
    return 1;
}

int hub_url_resolve(const char *base, const char *location, char *out, size_t cap) {
    size_t n = strlen(location), o;
    if (n == 0) return 0;
    if (origin_len(location)) {
        if (strncmp(location, "http://", 7) != 0 && strncmp(location, "https://", 8) != 0) return 0;
        if (n >= cap) return 0;
        memcpy(out, location, n + 1);
        return 1;
    }
    if (location[0] != '/' || location[1] == '/') return 0; /* only host-relative paths */
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) return 0;
    o = origin_len(base);
    if (!o || o + n >= cap) return 0;
    memcpy(out, base, o);
    memcpy(out + o, location, n + 1);
    return 1;
}

int hub_url_quote(const char *s, int keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (o + 4 > cap) return 0;
        if (plain) out[o++] = (char)c;
        else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = 0;
    return 1;
}

/* ---- repo ids and file names ---- */

static int valid_name_part(const char *s, size_t n) {
    size_t i;
    if (n == 0 || n > 96) return 0;
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.') return 0;
    for (i = 0; i < n; i++) {
        char c = s[i];
        if (!(isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.')) return 0;
        if (i + 1 < n && ((c == '-' && s[i + 1] == '-') || (c == '.' && s[i + 1] == '.'))) return 0;
    }
    return 1;
}

/* A revision: a branch, tag or commit name; refs/pr/N included. No "..", no control bytes. */
static int valid_revision(const char *s) {
    size_t i, n = strlen(s);
    if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..") || strstr(s, "//")) return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == '\\' || s[i] == 0x7f || s[i] == '~' || s[i] == '^' ||
            s[i] == ':' || s[i] == '?' || s[i] == '*' || s[i] == '[')
            return 0;
    return 1;
}

int hub_parse_repo_id(const char *arg, char *repo, size_t repo_cap, char *rev, size_t rev_cap, char *err,
                      size_t err_cap) {
    const char *at = strchr(arg, '@'), *slash;
    size_t n = at ? (size_t)(at - arg) : strlen(arg);
    slash = (const char *)memchr(arg, '/', n);
    if (!slash || memchr(slash + 1, '/', (size_t)(arg + n - slash - 1)) || !valid_name_part(arg, (size_t)(slash - arg)) ||
        !valid_name_part(slash + 1, (size_t)(arg + n - slash - 1))) {
        snprintf(err, err_cap, "'%.*s' is not a repo id: ORG/NAME, each of letters, digits, '-', '_' and '.'",
                 (int)(n > 200 ? 200 : n), arg);
        return 0;
    }
    if (n >= repo_cap) {
        snprintf(err, err_cap, "repo id too long");
        return 0;
    }
    memcpy(repo, arg, n);
    repo[n] = 0;
    if (snprintf(rev, rev_cap, "%s", at ? at + 1 : "main") >= (int)rev_cap || !valid_revision(rev)) {
        snprintf(err, err_cap, "'%.200s' is not a revision (a branch, tag or commit)", at ? at + 1 : "");
        return 0;
    }
    return 1;
}

int hub_safe_relpath(const char *name) {
    const char *p = name;
    size_t n = strlen(name);
    if (n == 0 || n > 1024 || name[0] == '/' || name[n - 1] == '/') return 0;
    for (; *p; p++)
        if ((unsigned char)*p < ' ' || *p == '\\' || *p == 0x7f) return 0;
    for (p = name; *p;) { /* no empty, "." or ".." component */
        const char *e = strchr(p, '/');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == 0 || (k == 1 && p[0] == '.') || (k == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += k + (e ? 1 : 0);
    }
    return 1;
}

/* ---- the revision API ---- */

static int is_hex_string(const bn_json *v, size_t want) {
    int i;
    if (!v || v->type != BN_JSON_STRING || (size_t)v->len != want) return 0;
    for (i = 0; i < v->len; i++)
        if (!((v->str[i] >= '0' && v->str[i] <= '9') || (v->str[i] >= 'a' && v->str[i] <= 'f'))) return 0;
    return 1;
}

static long long json_size(const bn_json *obj, const char *key) {
    const bn_json *v = bn_json_get(obj, key);
    if (!v || v->type != BN_JSON_NUMBER || v->num < 0 || v->num > 9e15 || v->num != (double)(long long)v->num)
        return -1;
    return (long long)v->num;
}

void hub_revision_free(hub_revision *rev) {
    int i;
    for (i = 0; i < rev->n_files; i++) free(rev->files[i].name);
    free(rev->files);
    memset(rev, 0, sizeof *rev);
}

int hub_parse_revision(const char *json, size_t len, hub_revision *rev, char *err, size_t cap) {
    bn_json_doc doc;
    bn_error e;
    const bn_json *root, *sha, *sib, *gated;
    int i, ok = 0;
    memset(rev, 0, sizeof *rev);
    if (bn_json_parse(&doc, json, len, "the revision API's answer", &e) != BN_OK) {
        snprintf(err, cap, "%s", e.msg);
        return 0;
    }
    root = doc.root;
    sha = bn_json_get(root, "sha");
    sib = bn_json_get(root, "siblings");
    if (!root || root->type != BN_JSON_OBJECT || !is_hex_string(sha, 40)) {
        snprintf(err, cap, "the revision API's answer has no commit (\"sha\" of 40 hex digits)");
        goto done;
    }
    memcpy(rev->commit, sha->str, 41);
    gated = bn_json_get(root, "gated");
    rev->gated = gated && gated->type == BN_JSON_STRING;
    rev->private_ = bn_json_bool(root, "private", 0);
    if (!sib || sib->type != BN_JSON_ARRAY) {
        snprintf(err, cap, "the revision API's answer has no file list (\"siblings\")");
        goto done;
    }
    rev->files = (hub_file *)calloc((size_t)sib->len + 1, sizeof(hub_file));
    if (!rev->files) {
        snprintf(err, cap, "out of memory");
        goto done;
    }
    for (i = 0; i < sib->len; i++) {
        const bn_json *s = &sib->child[i], *name = bn_json_get(s, "rfilename"), *lfs = bn_json_get(s, "lfs");
        hub_file *f = &rev->files[rev->n_files];
        if (!name || name->type != BN_JSON_STRING || (int)strlen(name->str) != name->len) {
            snprintf(err, cap, "sibling %d of the revision API's answer has no \"rfilename\"", i);
            goto done;
        }
        if (!hub_safe_relpath(name->str)) continue; /* never written: a name like ../x or /etc/x */
        f->name = (char *)malloc((size_t)name->len + 1);
        if (!f->name) {
            snprintf(err, cap, "out of memory");
            goto done;
        }
        memcpy(f->name, name->str, (size_t)name->len + 1);
        rev->n_files++;
        f->size = json_size(s, "size");
        if (is_hex_string(bn_json_get(s, "blobId"), 40)) memcpy(f->blob_id, bn_json_get(s, "blobId")->str, 41);
        if (lfs && is_hex_string(bn_json_get(lfs, "sha256"), 64)) {
            memcpy(f->sha256, bn_json_get(lfs, "sha256")->str, 65);
            if (json_size(lfs, "size") >= 0) f->size = json_size(lfs, "size");
        }
    }
    ok = 1;
done:
    bn_json_free(&doc);
    if (!ok) hub_revision_free(rev);
    return ok;
}
