/* hub.h: getting models from the HuggingFace Hub into the HF cache, and finding them there.

   What the translation units of the Hub client share:
     hash.c       SHA-256 and git's SHA-1, to check every download against its name
     curl.c       HTTP over libcurl, loaded at run time (dlopen): the one optional dependency
     hub_parse.c  the parsers of what the Hub answers (headers, ETags, revision JSON, URLs),
                  pure functions (tests/fuzz has a harness for them)
     hub.c        the cache layout of huggingface_hub, `bitnet pull`, `ls`, `rm`, and
                  hub_model_path(), which turns every command's -m ORG/NAME[@REV] into a folder
   The library (bitnet.h) knows nothing of this: it only ever sees a folder. */
#ifndef BITNET_HUB_H
#define BITNET_HUB_H

#include <stddef.h>
#include <stdint.h>
#include "progress.h"

/* ---- hashes (hash.c) ---- */
typedef enum hash_kind { HASH_SHA256, HASH_GIT_SHA1 } hash_kind;
typedef struct hash_ctx {
    hash_kind kind;
    uint32_t h[8];
    uint64_t total;
    uint8_t buf[64];
    size_t used;
} hash_ctx;
void hash_init(hash_ctx *c, hash_kind kind);
void hash_update(hash_ctx *c, const void *data, size_t n);
void hash_final_hex(hash_ctx *c, char *hex); /* 65 bytes for SHA-256, 41 for SHA-1 */
/* 1 when etag is 64 (SHA-256) or 40 (git blob SHA-1) lowercase hex digits. */
int hash_kind_of_etag(const char *etag, hash_kind *kind);
/* Hash of a file's bytes (HASH_GIT_SHA1: of git's blob header and the bytes). 0 on a read error. */
int hash_file_hex(const char *path, hash_kind kind, char *hex, progress *bar);

/* ---- HTTP responses and the Hub's answers (hub_parse.c) ---- */
#define HUB_ETAG_MAX 128
#define HUB_URL_MAX 4096

/* What a response's headers say that the client needs. Numbers are -1 when absent. */
typedef struct hub_response {
    long status;
    char location[HUB_URL_MAX];
    char etag[HUB_ETAG_MAX];        /* ETag, normalized: no W/ prefix, no quotes */
    char linked_etag[HUB_ETAG_MAX]; /* X-Linked-Etag (the SHA-256 of an LFS file), normalized */
    char repo_commit[64];           /* X-Repo-Commit */
    char error_code[64];            /* X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo */
    char error_message[512];        /* X-Error-Message */
    char content_type[128];
    long long content_length, linked_size, range_start, range_total; /* Content-Length, X-Linked-Size, Content-Range */
} hub_response;

void hub_response_init(hub_response *h);
/* One header line as the server sent it (with or without CRLF). A status line
   ("HTTP/1.1 302 Found") starts a new response: what came before is forgotten. */
void hub_parse_header_line(hub_response *h, const char *line, size_t len);
/* An ETag as huggingface_hub keeps it: W/ and the quotes removed. out has cap bytes. */
void hub_etag_normalize(const char *in, size_t n, char *out, size_t cap);

/* A Location header resolved against the URL that sent it (absolute, or a path on the same
   host). 0 when it is neither. */
int hub_url_resolve(const char *base, const char *location, char *out, size_t cap);
/* 1 when both URLs have the same scheme, host and port (a relative redirect keeps the token). */
int hub_url_same_origin(const char *a, const char *b);
/* Percent-encodes s for a URL path segment (keep_slash: '/' stays, for file paths). */
int hub_url_quote(const char *s, int keep_slash, char *out, size_t cap);

/* A file of a repo at one commit, from the revision API (?blobs=true). */
typedef struct hub_file {
    char *name;         /* rfilename: a path inside the repo */
    long long size;     /* -1 when not given */
    char sha256[65];    /* lfs.sha256 (the LFS files), else "" */
    char blob_id[41];   /* blobId (git), else "" */
} hub_file;

typedef struct hub_revision {
    char commit[41];
    int gated;          /* "gated": "auto" or "manual" */
    int private_;
    int n_files;
    hub_file *files;
} hub_revision;

/* Parses GET /api/models/{repo}/revision/{rev}. 0 with a message in err when it is not
   what the Hub sends (no 40-hex "sha", siblings without names, an unsafe file name). */
int hub_parse_revision(const char *json, size_t len, hub_revision *rev, char *err, size_t cap);
void hub_revision_free(hub_revision *rev);
/* 1 when a file name from the Hub is safe to join to a folder: relative, no "..", no
   backslash or control characters. */
int hub_safe_relpath(const char *name);

/* "org/name" or "org/name@rev" -> repo and revision (default "main"). 0 with a message when
   malformed (the Hub's rules: [A-Za-z0-9._-], no "--" or "..", not starting or ending in - or .). */
int hub_parse_repo_id(const char *arg, char *repo, size_t repo_cap, char *rev, size_t rev_cap, char *err,
                      size_t err_cap);
/* 1 when a -m argument names a repo rather than a path: ORG/NAME[@REV] and no such file or folder. */
int hub_looks_like_repo_id(const char *arg);

/* ---- HTTP over libcurl (curl.c) ---- */
typedef size_t (*hub_sink_fn)(void *user, const void *data, size_t n); /* returns n, or less to abort */

typedef struct hub_request {
    const char *method;       /* "GET" or "HEAD" */
    const char *url;
    const char *token;        /* sent as "Authorization: Bearer" when not NULL */
    long long range_from;     /* > 0: "Range: bytes=N-" */
    hub_sink_fn sink;        /* the body (GET); NULL: discarded */
    void *sink_user;
    progress *bar;            /* advanced by the bytes received, from range_from */
} hub_request;

/* 1 when libcurl can be loaded; otherwise 0 and why, with how to get it, in why. */
int hub_http_available(char *why, size_t cap);
/* One request, no redirect followed. 0 when a response came (any status; headers in *h),
   -1 on a transport failure (message in err): connection refused, reset, timeout. */
int hub_http_perform(const hub_request *rq, hub_response *h, char *err, size_t cap);

/* ---- the cache and the commands (hub.c) ---- */
/* mkdir -p of the folder part of path (up to the last '/'), or of all of path when whole. */
int make_dirs(const char *path, int whole);
/* snprintf for paths and URLs: 1 when all of it fitted (a longer one is cut, never overrun). */
int fmt_path(char *out, size_t cap, const char *f, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The folder of a model for a -m argument: arg itself when it is a path, else the snapshot
   of ORG/NAME[@REV] in the HF cache, pulled first when it is not there (unless offline).
   NULL after printing why on stderr. The result stays valid until the next call. */
const char *hub_model_path(const char *arg);

#endif
