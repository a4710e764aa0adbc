/* hub.c: models from the HuggingFace Hub, in the cache that huggingface_hub and @huggingface/hub use.

   The cache (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub):
       models--ORG--NAME/
           blobs/ETAG                  each file's bytes, named by the Hub's hash of them
           blobs/ETAG.incomplete       a download in progress (resumed with Range)
           refs/REV                    the commit a branch or tag pointed to when last pulled
           snapshots/COMMIT/FILE       a relative symlink to ../../blobs/ETAG
   A model pulled by either tool is seen by the other. A blob is renamed from .incomplete only
   once its size and hash match its name, and only then linked into a snapshot: a snapshot
   never holds a file that failed its check.

   The Hub (HF_ENDPOINT, default https://huggingface.co), as huggingface_hub calls it:
       GET  /api/models/ORG/NAME/revision/REV?blobs=true   the commit and the file list
       HEAD /ORG/NAME/resolve/COMMIT/FILE                  X-Repo-Commit, ETag / X-Linked-Etag,
            size (X-Linked-Size), and for LFS files a 302 to a CDN (followed without the token)
       GET  the file, with "Range: bytes=N-" to resume
   Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo). */
#if !defined(_WIN32) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "../bitnet.h"
#include "cli.h"
#include "hub.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>
#ifndef _WIN32
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>
#define HUB_POSIX 1
#else
#define HUB_POSIX 0
#endif

#define PATH_CAP 4096

int fmt_path(char *out, size_t cap, const char *f, ...) {
    va_list ap;
    int n;
    va_start(ap, f);
    n = vsnprintf(out, cap, f, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}
#define MAX_ATTEMPTS 5
#define MAX_REDIRECTS 10

typedef struct hub_env {
    char endpoint[1024];
    char cache[PATH_CAP];
    char token[1024];
    int offline;
} hub_env;

static int env_truthy(const char *name) {
    const char *v = getenv(name);
    char low[8];
    size_t i;
    if (!v || !*v || strlen(v) >= sizeof low) return 0;
    for (i = 0; v[i]; i++) low[i] = (char)tolower((unsigned char)v[i]);
    low[i] = 0;
    return !strcmp(low, "1") || !strcmp(low, "on") || !strcmp(low, "yes") || !strcmp(low, "true");
}

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Reads a small text file, whitespace trimmed at both ends. 0 when absent or empty. */
static int read_small_file(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n, s = 0;
    if (!f) return 0;
    n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    while (n && isspace((unsigned char)out[n - 1])) out[--n] = 0;
    while (s < n && isspace((unsigned char)out[s])) s++;
    memmove(out, out + s, n - s + 1);
    return out[0] != 0;
}

/* huggingface_hub's settings: HF_ENDPOINT, HF_HUB_CACHE / HF_HOME, HF_TOKEN or the token file. */
static void hub_env_load(hub_env *e) {
    const char *v, *home = env_nonempty("HOME");
    char hf_home[PATH_CAP];
    memset(e, 0, sizeof *e);
    fmt_path(e->endpoint, sizeof e->endpoint, "%s", (v = env_nonempty("HF_ENDPOINT")) ? v : "https://huggingface.co");
    while (strlen(e->endpoint) > 8 && e->endpoint[strlen(e->endpoint) - 1] == '/') e->endpoint[strlen(e->endpoint) - 1] = 0;
    if ((v = env_nonempty("HF_HOME"))) fmt_path(hf_home, sizeof hf_home, "%s", v);
    else if ((v = env_nonempty("XDG_CACHE_HOME"))) fmt_path(hf_home, sizeof hf_home, "%s/huggingface", v);
    else fmt_path(hf_home, sizeof hf_home, "%s/.cache/huggingface", home ? home : ".");
    if ((v = env_nonempty("HF_HUB_CACHE")) || (v = env_nonempty("HUGGINGFACE_HUB_CACHE")))
        fmt_path(e->cache, sizeof e->cache, "%s", v);
    else fmt_path(e->cache, sizeof e->cache, "%s/hub", hf_home);
    if ((v = env_nonempty("HF_TOKEN")) || (v = env_nonempty("HUGGING_FACE_HUB_TOKEN")))
        fmt_path(e->token, sizeof e->token, "%s", v);
    else {
        char path[PATH_CAP + 16];
        if ((v = env_nonempty("HF_TOKEN_PATH"))) fmt_path(path, sizeof path, "%s", v);
        else fmt_path(path, sizeof path, "%s/token", hf_home);
        if (!read_small_file(path, e->token, sizeof e->token)) e->token[0] = 0;
    }
    e->offline = env_truthy("HF_HUB_OFFLINE");
}

/* ------------------------------------------------------------ files and folders */

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

int make_dirs(const char *path, int whole) {
    char buf[PATH_CAP];
    size_t i, n = strlen(path);
    if (n >= sizeof buf) return 0;
    memcpy(buf, path, n + 1);
    if (!whole) {
        while (n && buf[n - 1] != '/') n--;
        if (!n) return 1;
        buf[n - 1] = 0;
    }
    for (i = 1; buf[i]; i++)
        if (buf[i] == '/') {
            buf[i] = 0;
#if HUB_POSIX
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
#endif
            buf[i] = '/';
        }
#if HUB_POSIX
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return 0;
#endif
    return is_dir(buf);
}

/* Writes text to path through a temporary file and a rename, so a reader never sees half of it. */
static int write_file_atomic(const char *path, const char *text) {
    char tmp[PATH_CAP + 32];
    FILE *f;
    fmt_path(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    if (!make_dirs(path, 0) || !(f = fopen(tmp, "wb"))) return 0;
    if (fputs(text, f) < 0 || fclose(f) != 0) {
        remove(tmp);
        return 0;
    }
    return rename(tmp, path) == 0;
}

static void repo_folder(const hub_env *e, const char *repo, char *out, size_t cap) {
    const char *slash = strchr(repo, '/');
    fmt_path(out, cap, "%s/models--%.*s--%s", e->cache, (int)(slash - repo), repo, slash + 1);
}

static int is_commit_hash(const char *s) {
    size_t i;
    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return i == 40;
}

/* The files a model needs, beside its weights. */
static const char *const MODEL_FILES[] = {"config.json", "generation_config.json", "tokenizer.json",
                                          "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                                          NULL};

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Calls fn for each shard file name in a model.safetensors.index.json; 0 when it is unreadable. */
static int for_each_shard(const char *index_path, int (*fn)(void *, const char *), void *user) {
    char *text = NULL;
    size_t len = 0;
    bn_json_doc doc;
    bn_error err;
    const bn_json *map;
    int i, ok = 1;
    if (bn_read_file(index_path, &text, &len, &err) != BN_OK) return 0;
    if (bn_json_parse(&doc, text, len, index_path, &err) != BN_OK) {
        bn_free(text);
        return 0;
    }
    map = bn_json_get(doc.root, "weight_map");
    if (!map || map->type != BN_JSON_OBJECT) ok = 0;
    for (i = 0; ok && i < map->len; i++)
        if (map->child[i].type != BN_JSON_STRING || !hub_safe_relpath(map->child[i].str) || !fn(user, map->child[i].str))
            ok = 0;
    bn_json_free(&doc);
    bn_free(text);
    return ok;
}

static int shard_present(void *dir, const char *name) {
    char p[PATH_CAP];
    fmt_path(p, sizeof p, "%s/%s", (const char *)dir, name);
    return path_exists(p);
}

/* A snapshot folder can be loaded: config.json and every weight file are there (links resolve). */
static int snapshot_complete(const char *dir) {
    char p[PATH_CAP];
    fmt_path(p, sizeof p, "%s/config.json", dir);
    if (!path_exists(p)) return 0;
    fmt_path(p, sizeof p, "%s/model.safetensors.index.json", dir);
    if (path_exists(p)) return for_each_shard(p, shard_present, (void *)dir);
    fmt_path(p, sizeof p, "%s/model.safetensors", dir);
    return path_exists(p);
}

/* The commit a revision names in the cache: itself when it is a commit hash, else refs/REV. */
static int cached_commit(const char *repo_dir, const char *rev, char *commit) {
    char p[PATH_CAP];
    if (is_commit_hash(rev)) {
        memcpy(commit, rev, 41);
        return 1;
    }
    fmt_path(p, sizeof p, "%s/refs/%s", repo_dir, rev);
    return read_small_file(p, commit, 41 + 8) && is_commit_hash(commit);
}

/* The complete snapshot of repo@rev in the cache, into out. */
static int cached_snapshot(const hub_env *e, const char *repo, const char *rev, char *out, size_t cap) {
    char dir[PATH_CAP], commit[64];
    repo_folder(e, repo, dir, sizeof dir);
    if (!cached_commit(dir, rev, commit)) return 0;
    fmt_path(out, cap, "%s/snapshots/%s", dir, commit);
    return snapshot_complete(out);
}

/* ------------------------------------------------------------ requests with retries */

static void sleep_ms(int ms) {
#if HUB_POSIX
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
#else
    (void)ms;
#endif
}

/* Waits before attempt number `attempt` (1, 2, ...): 0.5 s, 1 s, 2 s, 4 s. */
static void backoff(int attempt, const char *why) {
    int ms = 500 << (attempt - 1);
    fprintf(stderr, "bitnet pull: %s; retrying in %.1f s (attempt %d of %d)\n", why, ms / 1000.0, attempt + 1,
            MAX_ATTEMPTS);
    sleep_ms(ms);
}

static int transient_status(long s) { return s == 408 || s == 429 || s >= 500; }

typedef struct pull_ctx {
    hub_env env;
    char repo[256], rev[256], commit[41];
    char repo_dir[PATH_CAP], snap_dir[PATH_CAP];
    int from_cache_files;
    long long bytes_downloaded;
} pull_ctx;

/* The message for an error answer, naming what to do. */
static void describe_error(const pull_ctx *pc, const hub_response *h, const char *what, char *msg, size_t cap) {
    const char *code = h->error_code, *repo = pc->repo;
    int has_token = pc->env.token[0] != 0;
    if (!strcmp(code, "GatedRepo") || (h->status == 403 && !strcmp(code, "")))
        fmt_path(msg, cap,
                 has_token ? "%s is a gated repo and the token in HF_TOKEN has no access to it (HTTP %ld): ask for "
                             "access on %s/%s, with the account the token belongs to"
                           : "%s is a gated repo (HTTP %ld): accept its conditions on %s/%s, then set HF_TOKEN to an "
                             "access token of that account (or save it in $HF_HOME/token)",
                 repo, h->status, pc->env.endpoint, repo);
    else if (!strcmp(code, "RevisionNotFound"))
        fmt_path(msg, cap, "%s has no revision '%s' (HTTP %ld): name a branch, tag or commit that exists", repo,
                 pc->rev, h->status);
    else if (!strcmp(code, "EntryNotFound"))
        fmt_path(msg, cap, "%s@%s has no file %s (HTTP %ld)", repo, pc->rev, what, h->status);
    else if (!strcmp(code, "RepoNotFound") || h->status == 401 || h->status == 404)
        fmt_path(msg, cap,
                 has_token ? "%s was not found on %s (HTTP %ld), or the token in HF_TOKEN cannot read it"
                           : "%s was not found on %s (HTTP %ld); if it is private, set HF_TOKEN to an access token "
                             "that can read it",
                 repo, pc->env.endpoint, h->status);
    else
        fmt_path(msg, cap, "%s: HTTP %ld from the Hub%s%s", what, h->status, h->error_message[0] ? ": " : "",
                 h->error_message);
}

/* A request that follows redirects on the Hub's own host (with the token) and, when
   follow_foreign, those to other hosts too (without it). Transient failures are retried
   with backoff. Returns 1 with the last answer in *h and its URL in final_url; 0 with a
   message in msg. */
typedef struct membuf {
    char *data;
    size_t len, cap, limit;
} membuf;

static size_t membuf_sink(void *user, const void *data, size_t n) {
    membuf *b = (membuf *)user;
    if (b->len + n + 1 > b->limit) return 0;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = (char *)realloc(b->data, cap);
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

static int request_follow(const pull_ctx *pc, const char *method, const char *url, int follow_foreign, membuf *body,
                          hub_response *h, char *final_url, char *msg, size_t cap) {
    char cur[HUB_URL_MAX], next[HUB_URL_MAX], err[1024];
    int attempt = 1, hops = 0;
    fmt_path(cur, sizeof cur, "%s", url);
    for (;;) {
        hub_request rq;
        int same = hub_url_same_origin(cur, pc->env.endpoint);
        memset(&rq, 0, sizeof rq);
        rq.method = method;
        rq.url = cur;
        rq.token = same && pc->env.token[0] ? pc->env.token : NULL;
        if (body) {
            body->len = 0;
            rq.sink = membuf_sink;
            rq.sink_user = body;
        }
        if (hub_http_perform(&rq, h, err, sizeof err) != 0) {
            if (!hub_http_available(NULL, 0) || attempt >= MAX_ATTEMPTS) {
                fmt_path(msg, cap, "%s", err);
                return 0;
            }
            backoff(attempt++, err);
            continue;
        }
        if (transient_status(h->status) && attempt < MAX_ATTEMPTS) {
            fmt_path(err, sizeof err, "HTTP %ld from %s", h->status, cur);
            backoff(attempt++, err);
            continue;
        }
        if (h->status >= 300 && h->status < 400 && h->location[0]) {
            if (!hub_url_resolve(cur, h->location, next, sizeof next)) {
                fmt_path(msg, cap, "%s: redirect to an unusable location '%.200s'", cur, h->location);
                return 0;
            }
            if ((hub_url_same_origin(next, cur) || follow_foreign) && ++hops <= MAX_REDIRECTS) {
                fmt_path(cur, sizeof cur, "%s", next);
                continue;
            }
            if (hops > MAX_REDIRECTS) {
                fmt_path(msg, cap, "%s: too many redirects", url);
                return 0;
            }
        }
        fmt_path(final_url, HUB_URL_MAX, "%s", cur);
        return 1;
    }
}

/* ------------------------------------------------------------ one file */

typedef struct file_sink {
    FILE *f;
    const hub_response *h;
    long long have; /* bytes in the .incomplete file before this request */
    int restarted, err_no;
} file_sink;

static size_t file_sink_write(void *user, const void *data, size_t n) {
    file_sink *s = (file_sink *)user;
    if (s->h->status == 200 && s->have > 0 && !s->restarted) { /* the server ignored Range: start over */
        s->restarted = 1;
        if (fflush(s->f) != 0 || ftruncate(fileno(s->f), 0) != 0) {
            s->err_no = errno;
            return 0;
        }
        fseek(s->f, 0, SEEK_SET);
    }
    if (fwrite(data, 1, n, s->f) != n) {
        s->err_no = errno ? errno : EIO;
        return 0;
    }
    return n;
}

static int disk_has_room(const char *dir, long long need, long long *avail) {
#if HUB_POSIX
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) return 1; /* unknown: let the writes tell */
    *avail = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
    return *avail >= need;
#else
    (void)dir, (void)need, (void)avail;
    return 1;
#endif
}

static void disk_full_message(const char *path, long long need, char *msg, size_t cap) {
    char a[32];
    fmt_path(msg, cap, "no space left on the device writing %s (%s more needed): free some space, "
                       "or point HF_HUB_CACHE at a disk that has it", path, progress_bytes(need, a, sizeof a));
}

/* GETs url into blob.incomplete from where it stopped until it holds size bytes. */
static int download_blob(pull_ctx *pc, const char *url, const char *file, const char *incomplete, long long size,
                         char *msg, size_t cap) {
    char cur[HUB_URL_MAX], next[HUB_URL_MAX], err[1024];
    int attempt = 1, hops = 0;
    fmt_path(cur, sizeof cur, "%s", url);
    for (;;) {
        hub_request rq;
        hub_response h;
        file_sink sink;
        progress bar;
        long long have = file_size(incomplete), avail = 0;
        int rc;
        if (have < 0) have = 0;
        if (size >= 0 && have > size) { /* longer than the file: not ours */
            remove(incomplete);
            have = 0;
        }
        if (size >= 0 && have == size) return 1;
        if (size >= 0 && !disk_has_room(pc->repo_dir, size - have, &avail)) {
            disk_full_message(incomplete, size - have - avail, msg, cap);
            return 0;
        }
        memset(&sink, 0, sizeof sink);
        sink.f = fopen(incomplete, "ab");
        if (!sink.f) {
            fmt_path(msg, cap, "cannot write %s: %s", incomplete, strerror(errno));
            return 0;
        }
        setvbuf(sink.f, NULL, _IONBF, 0); /* what arrived is on disk, even if the process is killed */
        sink.h = &h;
        sink.have = have;
        memset(&rq, 0, sizeof rq);
        rq.method = "GET";
        rq.url = cur;
        rq.token = hub_url_same_origin(cur, pc->env.endpoint) && pc->env.token[0] ? pc->env.token : NULL;
        rq.range_from = have;
        rq.sink = file_sink_write;
        rq.sink_user = &sink;
        rq.bar = &bar;
        progress_begin(&bar, file, size, have);
        rc = hub_http_perform(&rq, &h, err, sizeof err);
        if (fclose(sink.f) != 0 && !sink.err_no) sink.err_no = errno;
        progress_end(&bar, rc == 0 && h.status >= 200 && h.status < 300);
        if (sink.restarted) have = 0;
        pc->bytes_downloaded += file_size(incomplete) - have;
        if (sink.err_no == ENOSPC) {
            disk_full_message(incomplete, size >= 0 ? size - file_size(incomplete) : 0, msg, cap);
            return 0;
        }
        if (sink.err_no) {
            fmt_path(msg, cap, "cannot write %s: %s", incomplete, strerror(sink.err_no));
            return 0;
        }
        if (rc != 0 || transient_status(h.status)) {
            if (rc == 0) fmt_path(err, sizeof err, "HTTP %ld from %s", h.status, cur);
            if (attempt >= MAX_ATTEMPTS || !hub_http_available(NULL, 0)) {
                fmt_path(msg, cap, "%s (the part downloaded is kept: run the same command to resume)", err);
                return 0;
            }
            backoff(attempt++, err);
            continue;
        }
        if (h.status >= 300 && h.status < 400 && h.location[0] && ++hops <= MAX_REDIRECTS &&
            hub_url_resolve(cur, h.location, next, sizeof next)) {
            fmt_path(cur, sizeof cur, "%s", next);
            continue;
        }
        if (h.status == 416) { /* the range starts at or past the end: only a complete file is fine */
            if (size >= 0 && file_size(incomplete) == size) return 1;
            remove(incomplete);
            if (attempt++ >= MAX_ATTEMPTS) {
                fmt_path(msg, cap, "%s: the server refuses every range (HTTP 416)", cur);
                return 0;
            }
            continue;
        }
        if (h.status != 200 && h.status != 206) {
            describe_error(pc, &h, file, msg, cap);
            return 0;
        }
        if (h.status == 206 && h.range_start != have) {
            fmt_path(msg, cap, "%s: asked for bytes from %lld, the server sent them from %lld", cur, have, h.range_start);
            remove(incomplete);
            return 0;
        }
        if (size < 0 || file_size(incomplete) >= size) return 1;
        /* the body ended early without an error: resume */
        if (attempt >= MAX_ATTEMPTS) {
            fmt_path(msg, cap, "%s: the transfer keeps ending early (%lld of %lld bytes)", cur, file_size(incomplete),
                     size);
            return 0;
        }
        backoff(attempt++, "the transfer ended early");
    }
}

#if HUB_POSIX
/* huggingface_hub's lock for a blob (filelock on .locks/models--ORG--NAME/ETAG.lock), so that two
   tools pulling the same file at once do not write it together. Returns the fd, or -1. */
static int lock_blob(const pull_ctx *pc, const char *etag) {
    char p[PATH_CAP];
    const char *base = strrchr(pc->repo_dir, '/');
    int fd;
    fmt_path(p, sizeof p, "%s/.locks%s/%s.lock", pc->env.cache, base ? base : "/", etag);
    if (!make_dirs(p, 0) || (fd = open(p, O_RDWR | O_CREAT, 0644)) < 0) return -1;
    if (flock(fd, LOCK_EX) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}
static void unlock_blob(int fd) {
    if (fd >= 0) {
        flock(fd, LOCK_UN);
        close(fd);
    }
}
#else
static int lock_blob(const pull_ctx *pc, const char *etag) { (void)pc, (void)etag; return -1; }
static void unlock_blob(int fd) { (void)fd; }
#endif

/* snapshots/COMMIT/FILE -> ../../blobs/ETAG (one more ../ per folder in FILE). */
static int link_into_snapshot(const pull_ctx *pc, const char *file, const char *etag, char *msg, size_t cap) {
    char pointer[PATH_CAP], target[PATH_CAP];
    const char *p;
    size_t n = 0;
    fmt_path(pointer, sizeof pointer, "%s/%s", pc->snap_dir, file);
    strcpy(target, "../../");
    n = strlen(target);
    for (p = file; *p && n + 3 < sizeof target; p++)
        if (*p == '/') memcpy(target + n, "../", 4), n += 3;
    fmt_path(target + n, sizeof target - n, "blobs/%s", etag);
    if (!make_dirs(pointer, 0)) {
        fmt_path(msg, cap, "cannot create the folder of %s: %s", pointer, strerror(errno));
        return 0;
    }
    remove(pointer);
#if HUB_POSIX
    if (symlink(target, pointer) != 0) {
        fmt_path(msg, cap, "cannot link %s: %s", pointer, strerror(errno));
        return 0;
    }
#endif
    return 1;
}

/* Checks the .incomplete file against its name (size and hash) and moves it to blobs/ETAG. */
static int verify_and_keep(const char *file, const char *incomplete, const char *blob, const char *etag,
                           long long size, char *msg, size_t cap) {
    char hex[65], label[160];
    hash_kind kind;
    progress bar;
    long long have = file_size(incomplete);
    int ok;
    if (size >= 0 && have != size) {
        fmt_path(msg, cap, "%s: %lld bytes received, the Hub says %lld", file, have, size);
        return 0;
    }
    hash_kind_of_etag(etag, &kind);
    fmt_path(label, sizeof label, "%s (%s)", file, kind == HASH_SHA256 ? "sha256" : "git sha1");
    progress_begin(&bar, label, have, 0);
    bar.quiet |= have < (64 << 20); /* only large files show the check */
    ok = hash_file_hex(incomplete, kind, hex, &bar);
    progress_end(&bar, ok);
    if (!ok) {
        fmt_path(msg, cap, "cannot read %s back: %s", incomplete, strerror(errno));
        return 0;
    }
    if (strcmp(hex, etag) != 0) {
        fmt_path(msg, cap, "%s is corrupt: its %s is %s, the Hub names it %s; it was discarded", file,
                 kind == HASH_SHA256 ? "SHA-256" : "git blob SHA-1", hex, etag);
        return 0;
    }
    if (rename(incomplete, blob) != 0) {
        fmt_path(msg, cap, "cannot rename %s: %s", incomplete, strerror(errno));
        return 0;
    }
    return 1;
}

/* Gets one file of the snapshot (unless it is there) and links it in. */
static int pull_file(pull_ctx *pc, const hub_file *f, char *msg, size_t cap) {
    char pointer[PATH_CAP], url[HUB_URL_MAX], qfile[2048], final_url[HUB_URL_MAX], etag[HUB_ETAG_MAX];
    char blob[PATH_CAP], incomplete[PATH_CAP + 16], get_url[HUB_URL_MAX];
    hub_response h;
    hash_kind kind;
    long long size;
    int lock, tries, ok = 0;
    fmt_path(pointer, sizeof pointer, "%s/%s", pc->snap_dir, f->name);
    if (path_exists(pointer)) {
        pc->from_cache_files++;
        return 1;
    }
    if (!hub_url_quote(f->name, 1, qfile, sizeof qfile)) {
        fmt_path(msg, cap, "file name too long: %.200s", f->name);
        return 0;
    }
    fmt_path(url, sizeof url, "%s/%s/resolve/%s/%s", pc->env.endpoint, pc->repo, pc->commit, qfile);
    if (!request_follow(pc, "HEAD", url, 0, NULL, &h, final_url, msg, cap)) return 0;
    if (h.status >= 400 || (h.status >= 300 && !h.location[0])) {
        describe_error(pc, &h, f->name, msg, cap);
        return 0;
    }
    fmt_path(etag, sizeof etag, "%s", h.linked_etag[0] ? h.linked_etag : h.etag);
    if (!hash_kind_of_etag(etag, &kind)) {
        fmt_path(msg, cap, "%s: the Hub's ETag '%.100s' is not a SHA-256 or git hash, so the file cannot be checked",
                 f->name, etag);
        return 0;
    }
    if (f->sha256[0] && kind == HASH_SHA256 && strcmp(f->sha256, etag) != 0) {
        fmt_path(msg, cap, "%s: the file list says sha256 %s, the file's ETag %s", f->name, f->sha256, etag);
        return 0;
    }
    size = h.linked_size >= 0 ? h.linked_size : h.status < 300 ? h.content_length : f->size;
    if (h.status >= 300) { /* an LFS file: its bytes are at the redirect's target */
        if (!hub_url_resolve(final_url, h.location, get_url, sizeof get_url)) {
            fmt_path(msg, cap, "%s: unusable redirect '%.200s'", f->name, h.location);
            return 0;
        }
    } else fmt_path(get_url, sizeof get_url, "%s", final_url);
    fmt_path(blob, sizeof blob, "%s/blobs/%s", pc->repo_dir, etag);
    fmt_path(incomplete, sizeof incomplete, "%s.incomplete", blob);
    if (!make_dirs(blob, 0)) {
        fmt_path(msg, cap, "cannot create %s/blobs: %s", pc->repo_dir, strerror(errno));
        return 0;
    }
    lock = lock_blob(pc, etag);
    for (tries = 0; !ok && tries < 2; tries++) { /* a corrupt download is discarded and fetched once more */
        if (path_exists(blob)) {
            ok = 1;
            break;
        }
        if (tries) fprintf(stderr, "bitnet pull: %s\nbitnet pull: downloading %s again\n", msg, f->name);
        if (!download_blob(pc, get_url, f->name, incomplete, size, msg, cap)) break;
        ok = verify_and_keep(f->name, incomplete, blob, etag, size, msg, cap);
        if (!ok) remove(incomplete);
    }
    unlock_blob(lock);
    return ok && link_into_snapshot(pc, f->name, etag, msg, cap);
}

/* ------------------------------------------------------------ one snapshot */

static int wanted_config_file(const char *name) {
    int i;
    for (i = 0; MODEL_FILES[i]; i++)
        if (!strcmp(name, MODEL_FILES[i])) return 1;
    return 0;
}

static const hub_file *find_file(const hub_revision *r, const char *name) {
    int i;
    for (i = 0; i < r->n_files; i++)
        if (!strcmp(r->files[i].name, name)) return &r->files[i];
    return NULL;
}

typedef struct shard_pull {
    pull_ctx *pc;
    const hub_revision *rev;
    char *msg;
    size_t cap;
    int failed;
} shard_pull;

static int pull_shard(void *user, const char *name) {
    shard_pull *sp = (shard_pull *)user;
    const hub_file *f = find_file(sp->rev, name);
    hub_file missing;
    if (sp->failed) return 1;
    if (!f) { /* the index names a shard the listing lacks: let the Hub answer for it */
        memset(&missing, 0, sizeof missing);
        missing.name = (char *)name;
        missing.size = -1;
        f = &missing;
    }
    if (!pull_file(sp->pc, f, sp->msg, sp->cap)) sp->failed = 1;
    return 1;
}

/* Config and tokenizer files, then the weights: model.safetensors, or the index and its shards,
   or else every top-level *.safetensors. */
static int pull_model_files(pull_ctx *pc, const hub_revision *r, char *msg, size_t cap) {
    const hub_file *index = find_file(r, "model.safetensors.index.json"), *single = find_file(r, "model.safetensors");
    int i, n_weights = 0;
    if (!find_file(r, "config.json")) {
        fmt_path(msg, cap, "%s@%s has no config.json: it is not a transformers model", pc->repo, pc->rev);
        return 0;
    }
    for (i = 0; i < r->n_files; i++)
        if (wanted_config_file(r->files[i].name) && !pull_file(pc, &r->files[i], msg, cap)) return 0;
    if (single) return pull_file(pc, single, msg, cap);
    if (index) {
        char p[PATH_CAP];
        shard_pull sp;
        if (!pull_file(pc, index, msg, cap)) return 0;
        memset(&sp, 0, sizeof sp);
        sp.pc = pc, sp.rev = r, sp.msg = msg, sp.cap = cap;
        fmt_path(p, sizeof p, "%s/model.safetensors.index.json", pc->snap_dir);
        if (!for_each_shard(p, pull_shard, &sp)) {
            fmt_path(msg, cap, "%s@%s: model.safetensors.index.json has no usable weight_map", pc->repo, pc->rev);
            return 0;
        }
        return !sp.failed;
    }
    for (i = 0; i < r->n_files; i++)
        if (!strchr(r->files[i].name, '/') && ends_with(r->files[i].name, ".safetensors")) {
            if (!pull_file(pc, &r->files[i], msg, cap)) return 0;
            n_weights++;
        }
    if (!n_weights) {
        fmt_path(msg, cap, "%s@%s has no *.safetensors weights (bitnet.h reads SafeTensors only)", pc->repo, pc->rev);
        return 0;
    }
    return 1;
}

/* GET the revision API: the commit and the file list. */
static int fetch_revision(pull_ctx *pc, hub_revision *r, int *transport_failed, char *msg, size_t cap) {
    char url[HUB_URL_MAX], qrev[1024], final_url[HUB_URL_MAX];
    hub_response h;
    membuf body;
    int ok;
    memset(&body, 0, sizeof body);
    body.limit = 64u << 20;
    *transport_failed = 0;
    hub_url_quote(pc->rev, 0, qrev, sizeof qrev);
    fmt_path(url, sizeof url, "%s/api/models/%s/revision/%s?blobs=true", pc->env.endpoint, pc->repo, qrev);
    if (!request_follow(pc, "GET", url, 0, &body, &h, final_url, msg, cap)) {
        *transport_failed = 1;
        free(body.data);
        return 0;
    }
    if (h.status != 200) {
        describe_error(pc, &h, "the revision API", msg, cap);
        free(body.data);
        return 0;
    }
    ok = hub_parse_revision(body.data ? body.data : "", body.len, r, msg, cap);
    free(body.data);
    return ok;
}

/* Pulls repo@rev into the cache; the snapshot folder into out. 1 on success. */
static int hub_pull(const hub_env *env, const char *repo, const char *rev, char *out, size_t out_cap) {
    pull_ctx pc;
    hub_revision r;
    char msg[2048], ref_path[PATH_CAP], why[512], a[32];
    int transport_failed = 0, ok;
    double t0 = bn_time_s();
    memset(&pc, 0, sizeof pc);
    pc.env = *env;
    fmt_path(pc.repo, sizeof pc.repo, "%s", repo);
    fmt_path(pc.rev, sizeof pc.rev, "%s", rev);
    repo_folder(env, repo, pc.repo_dir, sizeof pc.repo_dir);
    if (env->offline) {
        if (cached_snapshot(env, repo, rev, out, out_cap)) return 1;
        fprintf(stderr, "bitnet: HF_HUB_OFFLINE is set and %s@%s is not in the cache (%s): unset HF_HUB_OFFLINE to "
                        "download it, or pass a folder to -m\n", repo, rev, env->cache);
        return 0;
    }
    if (!hub_http_available(why, sizeof why)) {
        if (cached_snapshot(env, repo, rev, out, out_cap)) return 1;
        fprintf(stderr, "bitnet: %s@%s is not in the cache (%s) and cannot be downloaded: %s\n", repo, rev, env->cache,
                why);
        return 0;
    }
    if (!fetch_revision(&pc, &r, &transport_failed, msg, sizeof msg)) {
        if (transport_failed && cached_snapshot(env, repo, rev, out, out_cap)) {
            fprintf(stderr, "bitnet: the Hub is out of reach (%s); using the cached %s@%s\n", msg, repo, rev);
            return 1;
        }
        fprintf(stderr, "bitnet: cannot pull %s@%s: %s\n", repo, rev, msg);
        return 0;
    }
    memcpy(pc.commit, r.commit, 41);
    fmt_path(pc.snap_dir, sizeof pc.snap_dir, "%s/snapshots/%s", pc.repo_dir, pc.commit);
    if (!make_dirs(pc.snap_dir, 1)) {
        fprintf(stderr, "bitnet: cannot create %s: %s\n", pc.snap_dir, strerror(errno));
        hub_revision_free(&r);
        return 0;
    }
    ok = pull_model_files(&pc, &r, msg, sizeof msg);
    hub_revision_free(&r);
    if (!ok) {
        fprintf(stderr, "bitnet: cannot pull %s@%s: %s\n", repo, rev, msg);
        return 0;
    }
    if (strcmp(rev, pc.commit) != 0) { /* the ref is written once its snapshot is whole */
        fmt_path(ref_path, sizeof ref_path, "%s/refs/%s", pc.repo_dir, rev);
        if (!write_file_atomic(ref_path, pc.commit)) {
            fprintf(stderr, "bitnet: cannot write %s: %s\n", ref_path, strerror(errno));
            return 0;
        }
    }
    fprintf(stderr, "pulled %s@%s (commit %.12s): %s downloaded in %.1f s%s\n", repo, rev, pc.commit,
            progress_bytes(pc.bytes_downloaded, a, sizeof a), bn_time_s() - t0,
            pc.from_cache_files ? ", the rest was in the cache" : "");
    fmt_path(out, out_cap, "%s", pc.snap_dir);
    return 1;
}

/* ------------------------------------------------------------ -m ORG/NAME[@REV] */

int hub_looks_like_repo_id(const char *arg) {
    char repo[256], rev[256], err[256];
    return arg && !path_exists(arg) && hub_parse_repo_id(arg, repo, sizeof repo, rev, sizeof rev, err, sizeof err);
}

const char *hub_model_path(const char *arg) {
    static char out[PATH_CAP];
    char repo[256], rev[256], err[512];
    hub_env env;
    if (!arg || !hub_looks_like_repo_id(arg)) return arg;
    hub_parse_repo_id(arg, repo, sizeof repo, rev, sizeof rev, err, sizeof err);
    hub_env_load(&env);
    if (cached_snapshot(&env, repo, rev, out, sizeof out)) return out;
    if (!env.offline) fprintf(stderr, "%s: no such folder; pulling %s@%s from %s\n", arg, repo, rev, env.endpoint);
    return hub_pull(&env, repo, rev, out, sizeof out) ? out : NULL;
}

/* ------------------------------------------------------------ commands */

/* The commands take no options of their own: a repo id, and the environment above. */
typedef struct hub_args {
    int unused;
} hub_args;
static const cli_opt NO_OPTIONS[] = {CLI_END};

static int pull_run(void *args, int argc, char **argv) {
    char repo[256], rev[256], err[512], out[PATH_CAP];
    hub_env env;
    (void)args, (void)argc;
    if (!hub_parse_repo_id(argv[0], repo, sizeof repo, rev, sizeof rev, err, sizeof err))
        return cli_usage_error(&cmd_pull, "%s", err);
    hub_env_load(&env);
    if (!hub_pull(&env, repo, rev, out, sizeof out)) return EXIT_RUN;
    printf("%s\n", out);
    return EXIT_OK;
}

const cli_command cmd_pull = {
    "pull", "download a model from the HuggingFace Hub into the HF cache", "ORG/NAME[@REVISION]",
    "Downloads what a model needs (config, tokenizer, *.safetensors) into the HuggingFace cache, checks\n"
    "each file's SHA-256 (or git hash), resumes partial downloads, and prints the snapshot folder.\n"
    "Every command's -m takes ORG/NAME[@REVISION] too (pulled first when not cached).\n"
    "Environment (as huggingface_hub reads it):\n"
    "  HF_ENDPOINT        the Hub (default https://huggingface.co)\n"
    "  HF_TOKEN           access token for gated and private repos (else the file $HF_HOME/token)\n"
    "  HF_HUB_CACHE       the cache (default $HF_HOME/hub; HF_HOME default ~/.cache/huggingface)\n"
    "  HF_HUB_OFFLINE=1   never touch the network: use the cache only\n"
    "  BITNET_LIBCURL     the libcurl to load (default libcurl.so.4)\n",
    NO_OPTIONS, sizeof(hub_args), NULL, pull_run, 1, 1};

#if HUB_POSIX
/* Sum of the sizes of the files under dir (links followed), and their count. */
static void tree_size(const char *dir, long long *bytes, int *files) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_CAP];
    struct stat st;
    if (!d) return;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        fmt_path(p, sizeof p, "%s/%s", dir, de->d_name);
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) tree_size(p, bytes, files);
        else {
            *bytes += (long long)st.st_size;
            (*files)++;
        }
    }
    closedir(d);
}

/* Calls fn(ref name, commit) for every file under refs/ (refs/main, refs/refs/pr/1). */
static void walk_refs(const char *dir, const char *prefix, void (*fn)(void *, const char *, const char *), void *u) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_CAP], name[512], commit[64];
    struct stat st;
    if (!d) return;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        fmt_path(p, sizeof p, "%s/%s", dir, de->d_name);
        fmt_path(name, sizeof name, "%s%s", prefix, de->d_name);
        if (stat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            char sub[520];
            fmt_path(sub, sizeof sub, "%s/", name);
            walk_refs(p, sub, fn, u);
        } else if (read_small_file(p, commit, sizeof commit) && is_commit_hash(commit))
            fn(u, name, commit);
    }
    closedir(d);
}

typedef struct ref_list {
    const char *commit;
    char names[512];
} ref_list;

static void collect_ref(void *u, const char *name, const char *commit) {
    ref_list *r = (ref_list *)u;
    size_t n = strlen(r->names);
    if (strcmp(commit, r->commit) != 0) return;
    fmt_path(r->names + n, sizeof r->names - n, "%s%s", n ? "," : "", name);
}

static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        char p[PATH_CAP];
        while (d && (de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            fmt_path(p, sizeof p, "%s/%s", path, de->d_name);
            remove_tree(p);
        }
        if (d) closedir(d);
        rmdir(path);
    } else unlink(path);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The names of the entries of a folder, sorted; NULL-terminated, free with free_names. */
static char **list_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char **v = NULL;
    int cap = 0;
    *n = 0;
    if (!d) return NULL;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (*n + 2 > cap) {
            char **nv = (char **)realloc(v, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 16));
            if (!nv) break;
            v = nv;
        }
        v[*n] = (char *)malloc(strlen(de->d_name) + 1);
        if (!v[*n]) break;
        strcpy(v[(*n)++], de->d_name);
    }
    closedir(d);
    if (v) {
        qsort(v, (size_t)*n, sizeof(char *), cmp_str);
        v[*n] = NULL;
    }
    return v;
}

static void free_names(char **v, int n) {
    int i;
    for (i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int ls_run(void *args, int argc, char **argv) {
    hub_env env;
    char **repos;
    int n_repos, i, shown = 0;
    long long total = 0;
    char a[32];
    (void)args, (void)argc, (void)argv;
    hub_env_load(&env);
    repos = list_dir(env.cache, &n_repos);
    for (i = 0; i < n_repos; i++) {
        char dir[PATH_CAP], sub[PATH_CAP], repo[300], **snaps;
        const char *r = repos[i] + 8, *sep;
        int n_snaps, k, files = 0;
        long long blobs = 0;
        if (strncmp(repos[i], "models--", 8) != 0 || !(sep = strstr(r, "--"))) continue;
        fmt_path(repo, sizeof repo, "%.*s/%s", (int)(sep - r), r, sep + 2);
        fmt_path(dir, sizeof dir, "%s/%s", env.cache, repos[i]);
        fmt_path(sub, sizeof sub, "%s/blobs", dir);
        tree_size(sub, &blobs, &files);
        total += blobs;
        if (!shown++) printf("%-40s %-12s %-12s %6s %10s  %s\n", "REPO", "REFS", "COMMIT", "FILES", "SIZE", "STATE");
        fmt_path(sub, sizeof sub, "%s/snapshots", dir);
        snaps = list_dir(sub, &n_snaps);
        for (k = 0; k < n_snaps; k++) {
            char snap[PATH_CAP], refs_dir[PATH_CAP];
            ref_list rl;
            long long bytes = 0;
            int nf = 0;
            fmt_path(snap, sizeof snap, "%s/%s", sub, snaps[k]);
            fmt_path(refs_dir, sizeof refs_dir, "%s/refs", dir);
            memset(&rl, 0, sizeof rl);
            rl.commit = snaps[k];
            walk_refs(refs_dir, "", collect_ref, &rl);
            tree_size(snap, &bytes, &nf);
            printf("%-40s %-12s %-12.12s %6d %10s  %s\n", repo, rl.names[0] ? rl.names : "-", snaps[k], nf,
                   progress_bytes(bytes, a, sizeof a), snapshot_complete(snap) ? "complete" : "incomplete");
        }
        if (!n_snaps) printf("%-40s %-12s %-12s %6d %10s  %s\n", repo, "-", "-", 0, "", "no snapshot");
        free_names(snaps, n_snaps);
    }
    free_names(repos, n_repos);
    if (!shown) printf("no models in %s\n", env.cache);
    else printf("%d model(s), %s on disk in %s\n", shown, progress_bytes(total, a, sizeof a), env.cache);
    return EXIT_OK;
}

/* Adds the blob names that the links under dir point to (a list of names, NULL-terminated). */
static void referenced_blobs(const char *dir, char ***names, int *n, int *cap) {
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[PATH_CAP], target[PATH_CAP];
    struct stat st;
    if (!d) return;
    while ((de = readdir(d)) != NULL) {
        ssize_t len;
        const char *base;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        fmt_path(p, sizeof p, "%s/%s", dir, de->d_name);
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            referenced_blobs(p, names, n, cap);
            continue;
        }
        if (!S_ISLNK(st.st_mode) || (len = readlink(p, target, sizeof target - 1)) <= 0) continue;
        target[len] = 0;
        base = strrchr(target, '/');
        base = base ? base + 1 : target;
        if (*n + 2 > *cap) {
            char **nv = (char **)realloc(*names, sizeof(char *) * (size_t)(*cap = *cap ? 2 * *cap : 32));
            if (!nv) continue;
            *names = nv;
        }
        (*names)[*n] = (char *)malloc(strlen(base) + 1);
        if ((*names)[*n]) strcpy((*names)[(*n)++], base);
    }
    closedir(d);
}

typedef struct ref_drop {
    const char *commit, *refs_dir;
    int removed;
} ref_drop;

static void drop_ref(void *u, const char *name, const char *commit) {
    ref_drop *r = (ref_drop *)u;
    char p[PATH_CAP];
    if (strcmp(commit, r->commit) != 0) return;
    fmt_path(p, sizeof p, "%s/%s", r->refs_dir, name);
    if (unlink(p) == 0) r->removed++;
}

/* Removes one snapshot, the refs that point to it, and the blobs no other snapshot uses. */
static int remove_snapshot(const char *dir, const char *commit, long long *freed) {
    char snap[PATH_CAP], refs[PATH_CAP], blobs_dir[PATH_CAP], **blobs, **keep = NULL;
    int n_blobs, n_keep = 0, cap_keep = 0, i, j;
    ref_drop rd;
    fmt_path(snap, sizeof snap, "%s/snapshots/%s", dir, commit);
    fmt_path(refs, sizeof refs, "%s/refs", dir);
    fmt_path(blobs_dir, sizeof blobs_dir, "%s/blobs", dir);
    remove_tree(snap);
    memset(&rd, 0, sizeof rd);
    rd.commit = commit;
    rd.refs_dir = refs;
    walk_refs(refs, "", drop_ref, &rd);
    fmt_path(snap, sizeof snap, "%s/snapshots", dir);
    referenced_blobs(snap, &keep, &n_keep, &cap_keep);
    blobs = list_dir(blobs_dir, &n_blobs);
    for (i = 0; i < n_blobs; i++) {
        char p[PATH_CAP];
        int used = 0;
        if (ends_with(blobs[i], ".incomplete")) continue; /* a pull in progress or to resume */
        for (j = 0; j < n_keep && !used; j++) used = !strcmp(keep[j], blobs[i]);
        if (used) continue;
        fmt_path(p, sizeof p, "%s/%s", blobs_dir, blobs[i]);
        *freed += file_size(p);
        unlink(p);
    }
    free_names(blobs, n_blobs);
    free_names(keep, n_keep);
    return 1;
}

static int rm_run(void *args, int argc, char **argv) {
    char repo[256], rev[256], err[512], dir[PATH_CAP], commit[64], a[32];
    hub_env env;
    long long freed = 0;
    int files = 0;
    (void)args, (void)argc;
    if (!hub_parse_repo_id(argv[0], repo, sizeof repo, rev, sizeof rev, err, sizeof err))
        return cli_usage_error(&cmd_rm, "%s", err);
    hub_env_load(&env);
    repo_folder(&env, repo, dir, sizeof dir);
    if (!is_dir(dir)) {
        fprintf(stderr, "bitnet rm: %s is not in the cache (%s)\n", repo, env.cache);
        return EXIT_RUN;
    }
    if (!strchr(argv[0], '@')) {
        char locks[PATH_CAP];
        const char *base = strrchr(dir, '/');
        tree_size(dir, &freed, &files); /* links are followed: count the blobs alone */
        freed = 0;
        fmt_path(locks, sizeof locks, "%s/blobs", dir);
        tree_size(locks, &freed, &files);
        remove_tree(dir);
        fmt_path(locks, sizeof locks, "%s/.locks%s", env.cache, base);
        remove_tree(locks);
        printf("removed %s (%s freed)\n", repo, progress_bytes(freed, a, sizeof a));
        return EXIT_OK;
    }
    {
        char snap[PATH_CAP];
        if (!cached_commit(dir, rev, commit) || (fmt_path(snap, sizeof snap, "%s/snapshots/%s", dir, commit), !is_dir(snap))) {
            fprintf(stderr, "bitnet rm: %s@%s is not in the cache (%s)\n", repo, rev, env.cache);
            return EXIT_RUN;
        }
    }
    remove_snapshot(dir, commit, &freed);
    printf("removed %s@%s (commit %.12s, %s freed)\n", repo, rev, commit, progress_bytes(freed, a, sizeof a));
    return EXIT_OK;
}
#else
static int ls_run(void *args, int argc, char **argv) {
    (void)args, (void)argc, (void)argv;
    fprintf(stderr, "bitnet ls: not available on this platform yet\n");
    return EXIT_RUN;
}
static int rm_run(void *args, int argc, char **argv) {
    (void)args, (void)argc, (void)argv;
    fprintf(stderr, "bitnet rm: not available on this platform yet\n");
    return EXIT_RUN;
}
#endif

const cli_command cmd_ls = {
    "ls", "models in the HF cache: revisions, sizes", "",
    "Lists the models in the HuggingFace cache (HF_HUB_CACHE): each snapshot with its refs, commit,\n"
    "files and size, and whether it is complete. Models pulled by huggingface_hub or\n"
    "@huggingface/hub are listed too.\n",
    NO_OPTIONS, sizeof(hub_args), NULL, ls_run, 0, 0};

const cli_command cmd_rm = {
    "rm", "remove a model (or one revision) from the HF cache", "ORG/NAME[@REVISION]",
    "Removes a model from the HuggingFace cache: all of it, or the snapshot of one revision (a branch,\n"
    "tag or commit) with the files no other snapshot uses.\n",
    NO_OPTIONS, sizeof(hub_args), NULL, rm_run, 1, 1};
