/* The Hub client's parsers and hashes (tools/hub_parse.c, tools/hash.c), without a network:
   hashes against the published test vectors (FIPS 180-4 and git), headers as the Hub sends
   them, redirects, repo ids, file names and the revision API's JSON. */
#define _DEFAULT_SOURCE
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"
#include "../tools/hub_parse.c"
#include "../tools/hash.c"
#include "../tools/progress.c"

static void hex_of(hash_kind kind, const char *data, size_t n, char *hex) {
    hash_ctx c;
    hash_init(&c, kind);
    hash_update(&c, data, n);
    hash_final_hex(&c, hex);
}

static void test_sha256_vectors(void) {
    static char million[1000000];
    char hex[65];
    hash_ctx c;
    size_t i;
    hex_of(HASH_SHA256, "", 0, hex);
    BNT_CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    hex_of(HASH_SHA256, "abc", 3, hex);
    BNT_CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    hex_of(HASH_SHA256, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    BNT_CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    memset(million, 'a', sizeof million);
    hash_init(&c, HASH_SHA256); /* in uneven pieces */
    for (i = 0; i < sizeof million; i += 999) hash_update(&c, million + i, i + 999 > sizeof million ? sizeof million - i : 999);
    hash_final_hex(&c, hex);
    BNT_CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
}

static void test_sha1_and_git_blob_ids(void) {
    char hex[65], path[64];
    FILE *f;
    hex_of(HASH_GIT_SHA1, "abc", 3, hex); /* plain SHA-1 (FIPS 180-4) */
    BNT_CHECK(!strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d"));
    snprintf(path, sizeof path, "/tmp/bitnet-hash-%d", (int)getpid());
    f = fopen(path, "wb");
    BNT_CHECK(f != NULL);
    if (!f) return;
    fputs("hello\n", f); /* `echo hello | git hash-object --stdin` */
    fclose(f);
    BNT_CHECK(hash_file_hex(path, HASH_GIT_SHA1, hex, NULL) && !strcmp(hex, "ce013625030ba8dba906f756967f9e9ca394464a"));
    BNT_CHECK(hash_file_hex(path, HASH_SHA256, hex, NULL) &&
              !strcmp(hex, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"));
    remove(path);
    BNT_CHECK(!hash_file_hex("/nonexistent/x", HASH_SHA256, hex, NULL));
}

static void feed(hub_response *h, const char *block) {
    const char *p = block;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) + 1 : strlen(p);
        hub_parse_header_line(h, p, n);
        p += n;
    }
}

static void test_headers(void) {
    hub_response h;
    hash_kind k;
    hub_response_init(&h);
    feed(&h, "HTTP/1.1 307 Temporary Redirect\r\nLocation: /api/resolve-cache/x\r\n\r\n"
             "HTTP/2 302\r\nlocation: https://cdn.example/repos/ab/cd/f?Expires=1\r\n"
             "x-repo-commit: 5eedf9ad69da24578af3c6c9f18d94ce8cb572cd\r\n"
             "X-Linked-ETag:  \"5ff1e26f62ef455df8a95afc4f2b4b7c82e27e94476f7b97f14da9747e65521a\" \r\n"
             "ETag: W/\"644b234ba45a535eda943af5ededea97cbe2b9bd\"\r\nX-Linked-Size: 1768216\r\n"
             "Content-Range: bytes 100-199/1768216\r\nContent-Length: 100\r\nX-Error-Code: GatedRepo\r\n\r\n");
    BNT_CHECK(h.status == 302); /* the second response replaced the first */
    BNT_CHECK(!strcmp(h.location, "https://cdn.example/repos/ab/cd/f?Expires=1"));
    BNT_CHECK(!strcmp(h.repo_commit, "5eedf9ad69da24578af3c6c9f18d94ce8cb572cd"));
    BNT_CHECK(!strcmp(h.linked_etag, "5ff1e26f62ef455df8a95afc4f2b4b7c82e27e94476f7b97f14da9747e65521a"));
    BNT_CHECK(!strcmp(h.etag, "644b234ba45a535eda943af5ededea97cbe2b9bd"));
    BNT_CHECK(h.linked_size == 1768216 && h.content_length == 100 && h.range_start == 100 && h.range_total == 1768216);
    BNT_CHECK(!strcmp(h.error_code, "GatedRepo"));
    BNT_CHECK(hash_kind_of_etag(h.linked_etag, &k) && k == HASH_SHA256);
    BNT_CHECK(hash_kind_of_etag(h.etag, &k) && k == HASH_GIT_SHA1);
    BNT_CHECK(!hash_kind_of_etag("0123", &k) && !hash_kind_of_etag("../../etc/passwd", &k));
    hub_response_init(&h);
    feed(&h, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1234\r\nContent-Length: -5\r\n");
    BNT_CHECK(h.status == 416 && h.range_total == 1234 && h.range_start == -1 && h.content_length == -1);
    hub_response_init(&h);
    feed(&h, "HTTP/1.1 99999\r\nContent-Length: 99999999999999999999\r\n");
    BNT_CHECK(h.status == 0 && h.content_length == -1);
}

static void test_urls(void) {
    char out[HUB_URL_MAX];
    BNT_CHECK(hub_url_resolve("http://127.0.0.1:19500/a/resolve/main/x", "/api/resolve-cache/x", out, sizeof out) &&
              !strcmp(out, "http://127.0.0.1:19500/api/resolve-cache/x"));
    BNT_CHECK(hub_url_resolve("https://huggingface.co/a", "https://cdn-lfs.hf.co/f?x=1", out, sizeof out) &&
              !strcmp(out, "https://cdn-lfs.hf.co/f?x=1"));
    BNT_CHECK(!hub_url_resolve("https://huggingface.co/a", "//evil.example/x", out, sizeof out));
    BNT_CHECK(!hub_url_resolve("https://huggingface.co/a", "file:///etc/passwd", out, sizeof out));
    BNT_CHECK(!hub_url_resolve("https://huggingface.co/a", "relative/path", out, sizeof out));
    BNT_CHECK(!hub_url_resolve("thtp://127.0.0.1/a", "/b", out, sizeof out)); /* a fuzzing find: never a non-HTTP URL */
    BNT_CHECK(hub_url_same_origin("https://HuggingFace.co/a", "https://huggingface.co/b?c"));
    BNT_CHECK(!hub_url_same_origin("https://huggingface.co/a", "https://huggingface.co:444/a"));
    BNT_CHECK(!hub_url_same_origin("https://huggingface.co/a", "https://cdn-lfs.huggingface.co/a"));
    BNT_CHECK(!hub_url_same_origin("http://huggingface.co/", "https://huggingface.co/"));
    BNT_CHECK(hub_url_quote("refs/pr/1", 0, out, sizeof out) && !strcmp(out, "refs%2Fpr%2F1"));
    BNT_CHECK(hub_url_quote("sub dir/a+b.json", 1, out, sizeof out) && !strcmp(out, "sub%20dir/a%2Bb.json"));
}

static void test_repo_ids_and_names(void) {
    char repo[256], rev[256], err[512];
    BNT_CHECK(hub_parse_repo_id("microsoft/bitnet-b1.58-2B-4T", repo, sizeof repo, rev, sizeof rev, err, sizeof err) &&
              !strcmp(repo, "microsoft/bitnet-b1.58-2B-4T") && !strcmp(rev, "main"));
    BNT_CHECK(hub_parse_repo_id("a/b@refs/pr/1", repo, sizeof repo, rev, sizeof rev, err, sizeof err) &&
              !strcmp(rev, "refs/pr/1"));
    BNT_CHECK(!hub_parse_repo_id("gpt2", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(!hub_parse_repo_id("a/b/c", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(!hub_parse_repo_id("../b", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(!hub_parse_repo_id("a--x/b", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(!hub_parse_repo_id("a/b@../../x", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(!hub_parse_repo_id("a/b@", repo, sizeof repo, rev, sizeof rev, err, sizeof err));
    BNT_CHECK(hub_safe_relpath("config.json") && hub_safe_relpath("original/params.json") && hub_safe_relpath("a..b"));
    BNT_CHECK(!hub_safe_relpath("../x") && !hub_safe_relpath("/etc/x") && !hub_safe_relpath("a/./b") &&
              !hub_safe_relpath("a//b") && !hub_safe_relpath("a\\b") && !hub_safe_relpath("") && !hub_safe_relpath("a/"));
}

static void test_revision_json(void) {
    static const char ok[] =
        "{\"id\":\"a/b\",\"sha\":\"5eedf9ad69da24578af3c6c9f18d94ce8cb572cd\",\"gated\":\"manual\",\"private\":false,"
        "\"siblings\":[{\"rfilename\":\"config.json\",\"blobId\":\"644b234ba45a535eda943af5ededea97cbe2b9bd\",\"size\":772},"
        "{\"rfilename\":\"model.safetensors\",\"size\":134,\"lfs\":{\"sha256\":"
        "\"5ff1e26f62ef455df8a95afc4f2b4b7c82e27e94476f7b97f14da9747e65521a\",\"size\":1768216}},"
        "{\"rfilename\":\"../evil\"},{\"rfilename\":\"README.md\"}]}";
    hub_revision r;
    char err[512];
    BNT_CHECK(hub_parse_revision(ok, strlen(ok), &r, err, sizeof err));
    BNT_CHECK(!strcmp(r.commit, "5eedf9ad69da24578af3c6c9f18d94ce8cb572cd") && r.gated && !r.private_);
    BNT_CHECK(r.n_files == 3); /* ../evil is dropped */
    if (r.n_files == 3) {
        BNT_CHECK(!strcmp(r.files[0].name, "config.json") && r.files[0].size == 772 &&
                  !strcmp(r.files[0].blob_id, "644b234ba45a535eda943af5ededea97cbe2b9bd") && !r.files[0].sha256[0]);
        BNT_CHECK(r.files[1].size == 1768216 && strlen(r.files[1].sha256) == 64);
        BNT_CHECK(r.files[2].size == -1);
    }
    hub_revision_free(&r);
    BNT_CHECK(!hub_parse_revision("{\"sha\":\"abc\",\"siblings\":[]}", 27, &r, err, sizeof err) && strstr(err, "sha"));
    BNT_CHECK(!hub_parse_revision("[1,2]", 5, &r, err, sizeof err));
    BNT_CHECK(!hub_parse_revision("{\"sha\":", 7, &r, err, sizeof err));
    BNT_CHECK(!hub_parse_revision("{\"sha\":\"5eedf9ad69da24578af3c6c9f18d94ce8cb572cd\"}", 50, &r, err, sizeof err) &&
              strstr(err, "siblings"));
}

int main(void) {
    BNT_RUN(test_sha256_vectors);
    BNT_RUN(test_sha1_and_git_blob_ids);
    BNT_RUN(test_headers);
    BNT_RUN(test_urls);
    BNT_RUN(test_repo_ids_and_names);
    BNT_RUN(test_revision_json);
    return bnt_finish("hub_parse");
}
