/* What `bitnet pull` parses from the network (tools/hub_parse.c): response header lines, the
   revision API's JSON, redirect locations, and repo ids and file names, plus the hashes that
   check downloads (tools/hash.c). The first byte picks the parser; the rest is its input. */
#include "common.h"
#include "../../tools/hub_parse.c"
#include "../../tools/hash.c"
#include "../../tools/progress.c"

static void check_str(const char *s, size_t cap) {
    if (!memchr(s, 0, cap)) abort(); /* every field stays terminated inside its buffer */
}

static void headers(const char *s, size_t n) {
    hub_response h;
    size_t i = 0;
    hub_response_init(&h);
    while (i < n) {
        const char *e = (const char *)memchr(s + i, '\n', n - i);
        size_t len = e ? (size_t)(e - (s + i)) + 1 : n - i;
        hub_parse_header_line(&h, s + i, len);
        i += len;
    }
    if (h.status != 0 && (h.status < 100 || h.status > 599)) abort();
    check_str(h.location, sizeof h.location);
    check_str(h.etag, sizeof h.etag);
    check_str(h.linked_etag, sizeof h.linked_etag);
    check_str(h.repo_commit, sizeof h.repo_commit);
    check_str(h.error_code, sizeof h.error_code);
    check_str(h.error_message, sizeof h.error_message);
    if (h.content_length < -1 || h.linked_size < -1 || h.range_total < -1 || h.range_start < -1) abort();
}

static void revision(const char *s, size_t n) {
    hub_revision r;
    char err[512];
    int i;
    if (!hub_parse_revision(s, n, &r, err, sizeof err)) {
        check_str(err, sizeof err);
        return;
    }
    if (strlen(r.commit) != 40) abort();
    for (i = 0; i < r.n_files; i++)
        if (!hub_safe_relpath(r.files[i].name) || r.files[i].size < -1) abort();
    hub_revision_free(&r);
}

static void urls(const char *s) {
    const char *loc = s + strlen(s) + 1; /* base NUL location */
    char out[HUB_URL_MAX], q[HUB_URL_MAX];
    if (hub_url_resolve(s, loc, out, sizeof out) && strncmp(out, "http://", 7) && strncmp(out, "https://", 8)) abort();
    if (hub_url_same_origin(s, loc) != hub_url_same_origin(loc, s)) abort();
    if (hub_url_quote(loc, 1, q, sizeof q) && strpbrk(q, " \"<>\\")) abort();
}

static void names(const char *s) {
    char repo[256], rev[256], err[512], etag[HUB_ETAG_MAX];
    hash_kind kind;
    if (hub_parse_repo_id(s, repo, sizeof repo, rev, sizeof rev, err, sizeof err)) {
        const char *slash = strchr(repo, '/');
        if (!slash || strchr(slash + 1, '/') || strstr(repo, "..") || strstr(rev, "..")) abort();
    }
    if (hub_safe_relpath(s)) { /* no component is "", "." or "..": "/a/b/" holds no "//", "/./", "/../" */
        size_t n = strlen(s);
        char *w = (char *)malloc(n + 3);
        if (!w) abort();
        w[0] = '/';
        memcpy(w + 1, s, n);
        w[n + 1] = '/';
        w[n + 2] = 0;
        if (strstr(w, "//") || strstr(w, "/./") || strstr(w, "/../")) abort();
        free(w);
    }
    hub_etag_normalize(s, strlen(s), etag, sizeof etag);
    if (hash_kind_of_etag(etag, &kind) && strlen(etag) != (kind == HASH_SHA256 ? 64u : 40u)) abort();
}

static void hashes(const uint8_t *d, size_t n) {
    hash_ctx a, b;
    char x[65], y[65];
    size_t half = n / 2;
    hash_init(&a, HASH_SHA256); /* in one piece and in two: the same digest */
    hash_update(&a, d, n);
    hash_final_hex(&a, x);
    hash_init(&b, HASH_SHA256);
    hash_update(&b, d, half);
    hash_update(&b, d + half, n - half);
    hash_final_hex(&b, y);
    if (strcmp(x, y)) abort();
    hash_init(&a, HASH_GIT_SHA1);
    hash_update(&a, d, n);
    hash_final_hex(&a, x);
    if (strlen(x) != 40) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s;
    if (size < 1) return 0;
    s = (char *)malloc(size + 2); /* the input, NUL-terminated twice (urls reads two strings) */
    if (!s) abort();
    memcpy(s, data + 1, size - 1);
    s[size - 1] = s[size] = 0;
    switch (data[0] % 5) {
    case 0: headers(s, size - 1); break;
    case 1: revision(s, size - 1); break;
    case 2: urls(s); break;
    case 3: names(s); break;
    default: hashes(data + 1, size - 1); break;
    }
    free(s);
    return 0;
}
