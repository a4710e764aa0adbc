/* http.h: the HTTP/1.1 that `bitnet serve` speaks, as pure functions on byte buffers
   (no sockets here, so that each can be tested and fuzzed on its own).

   A server reads bytes into a buffer and calls http_parse_request until it stops
   answering HTTP_INCOMPLETE; the request's body follows the head in the same buffer
   (Content-Length bytes, or a chunked body that http_chunked_body measures and
   decodes). Pointers in http_request point into the caller's buffer. */
#ifndef BITNET_HTTP_H
#define BITNET_HTTP_H

#include <stddef.h>

#define HTTP_MAX_HEADERS 64

/* http_parse_request / http_chunked_body results besides a status code to answer with. */
#define HTTP_DONE 0        /* complete */
#define HTTP_INCOMPLETE -1 /* more bytes needed */

typedef struct http_header {
    const char *name, *value; /* not NUL-terminated */
    size_t name_len, value_len;
} http_header;

typedef struct http_request {
    char method[16];        /* NUL-terminated, e.g. "POST" */
    const char *path;       /* the target without its query ("/v1/models"); not NUL-terminated */
    size_t path_len;
    int minor;              /* HTTP/1.<minor> */
    long long content_length; /* -1 when absent */
    int chunked;            /* Transfer-Encoding: chunked */
    int keep_alive;         /* the connection may carry another request after this one */
    int expect_continue;    /* Expect: 100-continue */
    size_t head_len;        /* bytes of the request line, the headers and the blank line */
    http_header headers[HTTP_MAX_HEADERS];
    int n_headers;
} http_request;

/* Parses the head of a request at the start of buf[0..len). Returns HTTP_DONE (req
   filled, req->head_len set), HTTP_INCOMPLETE (no blank line yet and fewer than
   max_head bytes), or the status to answer with before closing: 400 malformed,
   417 an expectation other than 100-continue, 431 head over max_head bytes or over
   HTTP_MAX_HEADERS headers, 501 a transfer coding other than chunked, 505 not HTTP/1.x. */
int http_parse_request(const char *buf, size_t len, size_t max_head, http_request *req);

/* The value of a header (case-insensitive name), or NULL; *len gets its length. */
const char *http_header_value(const http_request *req, const char *name, size_t *len);

/* A chunked body at the start of buf[0..len). Returns HTTP_DONE with *used (bytes of
   the encoded body, trailers included) and *body_len (decoded bytes); HTTP_INCOMPLETE;
   400 when malformed; 413 when the decoded body would exceed max_body. When out is
   not NULL (room for *body_len bytes, known from a first call), the data is copied there. */
int http_chunked_body(const char *buf, size_t len, size_t max_body, size_t *used, size_t *body_len, char *out);

/* "OK", "Not Found", ... for a status code ("Unknown" for others). */
const char *http_reason(int status);

/* Writes a response head into out (NUL-terminated; at most cap bytes) and returns its
   length, or 0 when it does not fit. content_length -1 means a chunked body, -2 a body that
   ends when the connection closes (for HTTP/1.0 clients).
   extra: further header lines, each ending in "\r\n" (may be NULL). */
size_t http_format_head(char *out, size_t cap, int status, const char *content_type, long long content_length,
                        int keep_alive, const char *extra);

/* Writes the size line of a chunk of n bytes ("1a\r\n") into out[16]; returns its length. */
size_t http_chunk_size_line(char *out, size_t n);

#endif
