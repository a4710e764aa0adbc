/* http.c: HTTP/1.1 request heads, chunked bodies and response heads (see http.h).
   RFC 9112 where it matters for safety: bare LF accepted as a line end, obsolete
   line folding and whitespace before a colon refused, Content-Length and
   Transfer-Encoding together refused (request smuggling), lengths checked for overflow. */
#include "http.h"

#include <stdio.h>
#include <string.h>

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* a[0..n) equals the NUL-terminated b, ignoring ASCII case. */
static int ieq(const char *a, size_t n, const char *b) {
    size_t i;
    for (i = 0; i < n; i++)
        if (!b[i] || lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return 0;
    return b[n] == 0;
}

/* RFC 9110 tchar: the characters of methods and header names. */
static int is_tchar(int c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The end of the line starting at p (the '\n', or NULL if none before end). */
static const char *line_end(const char *p, const char *end) {
    const void *nl = memchr(p, '\n', (size_t)(end - p));
    return (const char *)nl;
}

/* The line [p, nl) without its '\r'. */
static size_t line_len(const char *p, const char *nl) { return (size_t)(nl - p) - (nl > p && nl[-1] == '\r'); }

static int parse_request_line(const char *s, size_t n, http_request *req) {
    size_t i = 0, m, t0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= sizeof req->method || i >= n || s[i] != ' ') return 400;
    memcpy(req->method, s, i);
    req->method[i] = 0;
    t0 = ++i;
    while (i < n && s[i] != ' ') {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f) return 400;
        i++;
    }
    if (i == t0 || i >= n) return 400;
    if (s[t0] != '/' && !(i - t0 == 1 && s[t0] == '*')) return 400; /* origin-form or "*" only */
    req->path = s + t0;
    for (m = t0; m < i && s[m] != '?' && s[m] != '#'; m++) {
    }
    req->path_len = m - t0;
    i++;
    if (n - i != 8 || memcmp(s + i, "HTTP/", 5) != 0 || s[i + 6] != '.' || s[i + 5] < '0' || s[i + 5] > '9' ||
        s[i + 7] < '0' || s[i + 7] > '9')
        return 400;
    if (s[i + 5] != '1') return 505;
    req->minor = s[i + 7] - '0';
    return 0;
}

/* Whether the comma-separated list v[0..n) contains token (case-insensitive). */
static int list_has(const char *v, size_t n, const char *token) {
    size_t i = 0;
    while (i < n) {
        size_t a, b;
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        a = i;
        while (i < n && v[i] != ',') i++;
        b = i;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
        if (b > a && ieq(v + a, b - a, token)) return 1;
    }
    return 0;
}

/* Digits only, no overflow past 2^62. */
static int parse_length(const char *v, size_t n, long long *out) {
    long long x = 0;
    size_t i;
    if (n == 0 || n > 18) return 0;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return 0;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 1;
}

/* Reads the headers the server acts on; returns 0 or a status to answer with. */
static int apply_header(http_request *req, const http_header *h, int *connection_seen) {
    if (ieq(h->name, h->name_len, "content-length")) {
        long long v;
        if (!parse_length(h->value, h->value_len, &v)) return 400;
        if (req->content_length >= 0 && req->content_length != v) return 400;
        req->content_length = v;
    } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
        if (req->chunked || !ieq(h->value, h->value_len, "chunked")) return 501;
        req->chunked = 1;
    } else if (ieq(h->name, h->name_len, "connection")) {
        if (list_has(h->value, h->value_len, "close")) req->keep_alive = 0;
        else if (list_has(h->value, h->value_len, "keep-alive")) req->keep_alive = 1;
        *connection_seen = 1;
    } else if (ieq(h->name, h->name_len, "expect")) {
        if (!ieq(h->value, h->value_len, "100-continue")) return 417;
        req->expect_continue = 1;
    }
    return 0;
}

static int parse_header_line(const char *s, size_t n, http_header *h) {
    size_t i = 0, a, b;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= n || s[i] != ':') return 400; /* also a space before the colon, or a folded line */
    h->name = s;
    h->name_len = i;
    a = i + 1;
    while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
    b = n;
    while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
    for (i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return 400;
    }
    h->value = s + a;
    h->value_len = b - a;
    return 0;
}

int http_parse_request(const char *buf, size_t len, size_t max_head, http_request *req) {
    const char *p = buf, *end = buf + (len < max_head ? len : max_head), *nl;
    int st, connection_seen = 0;
    memset(req, 0, sizeof *req);
    req->content_length = -1;
    /* a server SHOULD ignore empty lines before the request line (RFC 9112 2.2) */
    while (p < end && (*p == '\r' || *p == '\n') && p - buf < 8) p++;
    nl = line_end(p, end);
    if (!nl) return len >= max_head ? 431 : HTTP_INCOMPLETE;
    st = parse_request_line(p, line_len(p, nl), req);
    if (st) return st;
    req->keep_alive = req->minor >= 1;
    for (p = nl + 1;; p = nl + 1) {
        size_t n;
        nl = line_end(p, end);
        if (!nl) return len >= max_head ? 431 : HTTP_INCOMPLETE;
        n = line_len(p, nl);
        if (n == 0) break;
        if (req->n_headers == HTTP_MAX_HEADERS) return 431;
        st = parse_header_line(p, n, &req->headers[req->n_headers]);
        if (!st) st = apply_header(req, &req->headers[req->n_headers], &connection_seen);
        if (st) return st;
        req->n_headers++;
    }
    if (req->chunked && req->content_length >= 0) return 400;
    if (req->chunked && req->minor == 0) return 400; /* HTTP/1.0 has no chunked coding */
    if (!connection_seen) req->keep_alive = req->minor >= 1;
    req->head_len = (size_t)(nl + 1 - buf);
    return HTTP_DONE;
}

const char *http_header_value(const http_request *req, const char *name, size_t *len) {
    int i;
    for (i = 0; i < req->n_headers; i++)
        if (ieq(req->headers[i].name, req->headers[i].name_len, name)) {
            if (len) *len = req->headers[i].value_len;
            return req->headers[i].value;
        }
    return NULL;
}

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int http_chunked_body(const char *buf, size_t len, size_t max_body, size_t *used, size_t *body_len, char *out) {
    size_t pos = 0, total = 0;
    for (;;) { /* chunk-size [; ext] CRLF data CRLF ... 0 CRLF trailers CRLF */
        const char *nl = line_end(buf + pos, buf + len);
        size_t n, i = 0, size = 0;
        int digits = 0;
        if (!nl) return len - pos > 1024 ? 400 : HTTP_INCOMPLETE;
        n = line_len(buf + pos, nl);
        while (i < n && hex_digit((unsigned char)buf[pos + i]) >= 0) {
            if (size > (max_body | 0xffff)) return 413; /* stop before it can overflow */
            size = size * 16 + (size_t)hex_digit((unsigned char)buf[pos + i]);
            i++, digits++;
        }
        if (!digits || (i < n && buf[pos + i] != ';' && buf[pos + i] != ' ' && buf[pos + i] != '\t')) return 400;
        pos = (size_t)(nl + 1 - buf);
        if (size == 0) break;
        if (size > max_body - total) return 413;
        if (len - pos < size + 1) return HTTP_INCOMPLETE;
        if (out) memcpy(out + total, buf + pos, size);
        total += size;
        pos += size;
        if (buf[pos] == '\n') pos++;
        else if (buf[pos] == '\r') {
            if (len - pos < 2) return HTTP_INCOMPLETE;
            if (buf[pos + 1] != '\n') return 400;
            pos += 2;
        } else {
            return 400;
        }
    }
    for (;;) { /* trailer fields (ignored) up to an empty line */
        const char *nl = line_end(buf + pos, buf + len);
        size_t n;
        if (!nl) return len - pos > 8192 ? 400 : HTTP_INCOMPLETE;
        n = line_len(buf + pos, nl);
        pos = (size_t)(nl + 1 - buf);
        if (n == 0) break;
    }
    *used = pos;
    *body_len = total;
    return HTTP_DONE;
}

const char *http_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Unknown";
}

size_t http_format_head(char *out, size_t cap, int status, const char *content_type, long long content_length,
                        int keep_alive, const char *extra) {
    char length[64];
    int n;
    if (content_length >= 0) snprintf(length, sizeof length, "Content-Length: %lld\r\n", content_length);
    else if (content_length == -1) snprintf(length, sizeof length, "Transfer-Encoding: chunked\r\n");
    else length[0] = 0;
    n = snprintf(out, cap, "HTTP/1.1 %d %s\r\n%s%s%s%sConnection: %s\r\n%s\r\n", status, http_reason(status),
                 content_type ? "Content-Type: " : "", content_type ? content_type : "", content_type ? "\r\n" : "",
                 length, keep_alive ? "keep-alive" : "close", extra ? extra : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t http_chunk_size_line(char *out, size_t n) {
    int k = snprintf(out, 16, "%lx\r\n", (unsigned long)n);
    return k > 0 ? (size_t)k : 0;
}
