/* curl.c: HTTP(S) requests of the Hub client through libcurl, loaded at run time.

   Why dlopen rather than linking -lcurl: building `bitnet` then needs no libcurl headers or
   -dev package, the same binary runs on a machine without libcurl (every offline command
   works; only a download says how to get it), and no `make` flag splits the builds. libcurl's
   ABI is stable since 7.16 (2006): the few functions and option numbers used here are
   declared below, as curl.h numbers them, instead of included.

   BITNET_LIBCURL names the library to load (default: libcurl.so.4, then the other usual
   names); BITNET_NO_DLOPEN builds without the loader (every request then explains how to
   get a build with it). No redirect is followed here: hub.c decides which to follow, and
   sends the token only to the Hub itself. */
#if !defined(_WIN32) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "../bitnet.h"
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(BITNET_NO_DLOPEN) && !defined(_WIN32)
#include <dlfcn.h>
#define HTTP_HAVE_LOADER 1
#elif !defined(BITNET_NO_DLOPEN) && defined(_WIN32)
#include <windows.h>
#define HTTP_HAVE_LOADER 1
#else
#define HTTP_HAVE_LOADER 0
#endif

/* curl.h's numbers: option = type base + index. */
#define CURLOPT_WRITEDATA 10001
#define CURLOPT_URL 10002
#define CURLOPT_RANGE 10007
#define CURLOPT_ERRORBUFFER 10010
#define CURLOPT_WRITEFUNCTION 20011
#define CURLOPT_LOW_SPEED_LIMIT 19
#define CURLOPT_LOW_SPEED_TIME 20
#define CURLOPT_USERAGENT 10018
#define CURLOPT_HTTPHEADER 10023
#define CURLOPT_HEADERDATA 10029
#define CURLOPT_NOPROGRESS 43
#define CURLOPT_NOBODY 44
#define CURLOPT_FOLLOWLOCATION 52
#define CURLOPT_XFERINFODATA 10057
#define CURLOPT_CONNECTTIMEOUT 78
#define CURLOPT_HEADERFUNCTION 20079
#define CURLOPT_NOSIGNAL 99
#define CURLOPT_PROTOCOLS 181
#define CURLOPT_XFERINFOFUNCTION 20219
#define CURLINFO_RESPONSE_CODE 0x200002
#define CURL_GLOBAL_ALL 3L
#define CURLPROTO_HTTP_HTTPS 3L
#define CURL_ERROR_SIZE 256

typedef void CURL;
struct curl_slist;
typedef int (*curl_global_init_fn)(long flags);
typedef CURL *(*curl_easy_init_fn)(void);
typedef int (*curl_easy_setopt_fn)(CURL *c, int option, ...);
typedef int (*curl_easy_perform_fn)(CURL *c);
typedef int (*curl_easy_getinfo_fn)(CURL *c, int info, ...);
typedef void (*curl_easy_cleanup_fn)(CURL *c);
typedef const char *(*curl_easy_strerror_fn)(int code);
typedef struct curl_slist *(*curl_slist_append_fn)(struct curl_slist *l, const char *s);
typedef void (*curl_slist_free_all_fn)(struct curl_slist *l);

static struct {
    int tried, ok;
    char why[512];
    curl_easy_init_fn easy_init;
    curl_easy_setopt_fn setopt;
    curl_easy_perform_fn perform;
    curl_easy_getinfo_fn getinfo;
    curl_easy_cleanup_fn cleanup;
    curl_easy_strerror_fn strerror_;
    curl_slist_append_fn slist_append;
    curl_slist_free_all_fn slist_free_all;
} curl;

#if HTTP_HAVE_LOADER
static const char *HOW_TO_GET =
    "install libcurl (Debian/Ubuntu: apt-get install libcurl4; Fedora: dnf install libcurl; macOS has it), or set "
    "BITNET_LIBCURL to its path. Without it every offline command works: download with another tool "
    "(huggingface-cli, the @huggingface/hub client) into the same HF cache, or pass a folder to -m";

#ifdef _WIN32
static void *lib_open(const char *name) { return (void *)LoadLibraryA(name); }
static void *lib_sym(void *lib, const char *name) {
    FARPROC f = GetProcAddress((HMODULE)lib, name);
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}
static const char *lib_error(void) { return "LoadLibrary failed"; }
static const char *const LIB_NAMES[] = {"libcurl-x64.dll", "libcurl.dll", NULL};
#else
static void *lib_open(const char *name) { return dlopen(name, RTLD_NOW | RTLD_LOCAL); }
static void *lib_sym(void *lib, const char *name) { return dlsym(lib, name); }
static const char *lib_error(void) {
    const char *e = dlerror();
    return e ? e : "not found";
}
static const char *const LIB_NAMES[] = {"libcurl.so.4", "libcurl.so", "libcurl-gnutls.so.4", "libcurl.4.dylib",
                                        "libcurl.dylib", "/usr/lib/libcurl.4.dylib", NULL};
#endif

/* dlsym gives a data pointer; ISO C has no cast to a function pointer, memcpy is the portable way. */
#define LOAD(field, name)                                                                          \
    do {                                                                                           \
        void *sym_ = lib_sym(lib, name);                                                           \
        if (!sym_) {                                                                               \
            snprintf(curl.why, sizeof curl.why, "%s has no %s: %s", used, name, HOW_TO_GET);       \
            return 0;                                                                              \
        }                                                                                          \
        memcpy(&curl.field, &sym_, sizeof sym_);                                                   \
    } while (0)

static int curl_load(void) {
    const char *want = getenv("BITNET_LIBCURL"), *used = NULL;
    void *lib = NULL;
    curl_global_init_fn global_init;
    int i;
    if (want && *want) {
        lib = lib_open(want);
        used = want;
        if (!lib) {
            snprintf(curl.why, sizeof curl.why, "cannot load libcurl from BITNET_LIBCURL=%s (%s): %s", want,
                     lib_error(), HOW_TO_GET);
            return 0;
        }
    }
    for (i = 0; !lib && LIB_NAMES[i]; i++) {
        lib = lib_open(LIB_NAMES[i]);
        used = LIB_NAMES[i];
    }
    if (!lib) {
        snprintf(curl.why, sizeof curl.why, "downloading needs libcurl, and none was found (%s): %s", lib_error(),
                 HOW_TO_GET);
        return 0;
    }
    {
        void *sym = lib_sym(lib, "curl_global_init");
        if (!sym) {
            snprintf(curl.why, sizeof curl.why, "%s has no curl_global_init: %s", used, HOW_TO_GET);
            return 0;
        }
        memcpy(&global_init, &sym, sizeof sym);
    }
    LOAD(easy_init, "curl_easy_init");
    LOAD(setopt, "curl_easy_setopt");
    LOAD(perform, "curl_easy_perform");
    LOAD(getinfo, "curl_easy_getinfo");
    LOAD(cleanup, "curl_easy_cleanup");
    LOAD(strerror_, "curl_easy_strerror");
    LOAD(slist_append, "curl_slist_append");
    LOAD(slist_free_all, "curl_slist_free_all");
    if (global_init(CURL_GLOBAL_ALL) != 0) {
        snprintf(curl.why, sizeof curl.why, "curl_global_init failed in %s", used);
        return 0;
    }
    return 1;
}
#undef LOAD
#else
static int curl_load(void) {
    snprintf(curl.why, sizeof curl.why,
             "this bitnet was built without the libcurl loader (BITNET_NO_DLOPEN): rebuild with `make` on a system "
             "with dlopen. Meanwhile every offline command works: download with another tool (huggingface-cli, the "
             "@huggingface/hub client) into the same HF cache, or pass a folder to -m");
    return 0;
}
#endif

int hub_http_available(char *why, size_t cap) {
    if (!curl.tried) {
        curl.tried = 1;
        curl.ok = curl_load();
    }
    if (!curl.ok && why) snprintf(why, cap, "%s", curl.why);
    return curl.ok;
}

typedef struct transfer {
    const hub_request *rq;
    hub_response *h;
    long long received;
} transfer;

static size_t on_header(char *data, size_t size, size_t n, void *user) {
    transfer *t = (transfer *)user;
    hub_parse_header_line(t->h, data, size * n);
    return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *user) {
    transfer *t = (transfer *)user;
    size_t bytes = size * n;
    /* Only a successful answer's body is the file; an error page or a redirect's body is dropped. */
    if (t->h->status >= 200 && t->h->status < 300 && t->rq->sink) {
        if (t->rq->sink(t->rq->sink_user, data, bytes) != bytes) return 0; /* aborts: CURLE_WRITE_ERROR */
        t->received += (long long)bytes;
        if (t->rq->bar) progress_update(t->rq->bar, t->rq->range_from + t->received);
    }
    return bytes;
}

int hub_http_perform(const hub_request *rq, hub_response *h, char *err, size_t cap) {
    CURL *c;
    struct curl_slist *hdrs = NULL;
    char auth[1200], range[64], ebuf[CURL_ERROR_SIZE];
    transfer t;
    long code = 0;
    int rc;
    hub_response_init(h);
    if (!hub_http_available(err, cap)) return -1;
    c = curl.easy_init();
    if (!c) {
        snprintf(err, cap, "curl_easy_init failed");
        return -1;
    }
    memset(&t, 0, sizeof t);
    t.rq = rq;
    t.h = h;
    ebuf[0] = 0;
    hdrs = curl.slist_append(hdrs, "Accept-Encoding: identity"); /* sizes and ranges are of the file itself */
    if (rq->token && *rq->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", rq->token);
        hdrs = curl.slist_append(hdrs, auth);
    }
    curl.setopt(c, CURLOPT_URL, rq->url);
    curl.setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP_HTTPS);
    curl.setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl.setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl.setopt(c, CURLOPT_USERAGENT, "bitnet/" BITNET_VERSION);
    curl.setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl.setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl.setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl.setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled connection fails after 60 s and is retried */
    curl.setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl.setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl.setopt(c, CURLOPT_HEADERDATA, (void *)&t);
    curl.setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl.setopt(c, CURLOPT_WRITEDATA, (void *)&t);
    if (strcmp(rq->method, "HEAD") == 0) curl.setopt(c, CURLOPT_NOBODY, 1L);
    if (rq->range_from > 0) {
        snprintf(range, sizeof range, "%lld-", rq->range_from);
        curl.setopt(c, CURLOPT_RANGE, range);
    }
    rc = curl.perform(c);
    curl.getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code > 0) h->status = code;
    if (rc != 0) snprintf(err, cap, "%s: %s", rq->url, ebuf[0] ? ebuf : curl.strerror_(rc));
    curl.cleanup(c);
    curl.slist_free_all(hdrs);
    return rc == 0 ? 0 : -1;
}
