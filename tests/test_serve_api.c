/* The pure parts of `bitnet serve`, without sockets: the HTTP/1.1 request parser and chunked
   bodies (tools/http.c), the JSON writer (tools/jsonw.c), and OpenAI request bodies to
   generation parameters and back (tools/serve_api.c). Expected values come from RFC 9112,
   RFC 3629 and OpenAI's API reference, or are computed here independently. */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#include "../tools/http.c"
#include "../tools/jsonw.c"
#include "../tools/serve_api.c"

/* ---------------------------------------------------------------- HTTP */

static int parse(const char *s, http_request *rq) { return http_parse_request(s, strlen(s), 16384, rq); }

static int parse_status(const char *s) {
    http_request rq;
    return parse(s, &rq);
}

static void test_request_line_and_headers(void) {
    http_request rq;
    const char *s = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nAuthorization:  Bearer k \r\n\r\nbody";
    size_t n;
    const char *v;
    BNT_CHECK(parse(s, &rq) == HTTP_DONE);
    BNT_CHECK(strcmp(rq.method, "POST") == 0);
    BNT_CHECK(rq.path_len == 20 && memcmp(rq.path, "/v1/chat/completions", 20) == 0); /* the query is not part of the path */
    BNT_CHECK(rq.minor == 1 && rq.keep_alive == 1 && rq.content_length == 12 && !rq.chunked);
    BNT_CHECK(rq.head_len == strlen(s) - 4);
    v = http_header_value(&rq, "AUTHORIZATION", &n); /* case-insensitive, surrounding whitespace trimmed */
    BNT_CHECK(v && n == 8 && memcmp(v, "Bearer k", 8) == 0);
    BNT_CHECK(http_header_value(&rq, "x-missing", NULL) == NULL);
    /* bare LF line ends, and empty lines before the request line (RFC 9112 2.2) */
    BNT_CHECK(parse("\r\nGET / HTTP/1.1\nHost: a\n\n", &rq) == HTTP_DONE && rq.path_len == 1 && rq.content_length == -1);
    BNT_CHECK(parse("OPTIONS * HTTP/1.1\r\n\r\n", &rq) == HTTP_DONE);
}

static void test_incomplete_prefixes(void) {
    const char *s = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: t\r\n\r\n";
    size_t n = strlen(s), k;
    http_request rq;
    int bad = 0;
    for (k = 0; k < n; k++)
        if (http_parse_request(s, k, 16384, &rq) != HTTP_INCOMPLETE) bad++;
    BNT_CHECKF(bad == 0, "%d prefixes were not incomplete", bad);
    BNT_CHECK(http_parse_request(s, n, 16384, &rq) == HTTP_DONE && rq.head_len == n);
}

static void test_keep_alive(void) {
    http_request rq;
    BNT_CHECK(parse("GET / HTTP/1.0\r\n\r\n", &rq) == HTTP_DONE && rq.keep_alive == 0);
    BNT_CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &rq) == HTTP_DONE && rq.keep_alive == 1);
    BNT_CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &rq) == HTTP_DONE && rq.keep_alive == 0);
    BNT_CHECK(parse("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n", &rq) == HTTP_DONE && rq.keep_alive == 0);
    BNT_CHECK(parse("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n", &rq) == HTTP_DONE && rq.keep_alive == 1);
}

static void test_malformed_heads(void) {
    BNT_CHECK(parse_status("GET / HTTP/2.0\r\n\r\n") == 505);
    BNT_CHECK(parse_status("GET / HTTP/1.1x\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET  / HTTP/1.1\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET x HTTP/1.1\r\n\r\n") == 400);           /* not origin-form */
    BNT_CHECK(parse_status("G@T / HTTP/1.1\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GETTINGVERYLONGMETHOD / HTTP/1.1\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET /a\x01 HTTP/1.1\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == 400); /* whitespace before the colon */
    BNT_CHECK(parse_status("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n") == 400);
    BNT_CHECK(parse_status("GET / HTTP/1.1\r\nNoColon\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n") == HTTP_DONE);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n") == 501);
    BNT_CHECK(parse_status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n") == 400);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n") == HTTP_DONE);
    BNT_CHECK(parse_status("POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n") == 417);
}

static void test_head_limits(void) {
    http_request rq;
    char *big = (char *)malloc(40000);
    size_t n;
    int i;
    strcpy(big, "GET / HTTP/1.1\r\nX: ");
    n = strlen(big);
    memset(big + n, 'a', 20000);
    big[n + 20000] = 0;
    BNT_CHECK(http_parse_request(big, strlen(big), 16384, &rq) == 431); /* no blank line within 16 KB */
    BNT_CHECK(http_parse_request(big, 1000, 16384, &rq) == HTTP_INCOMPLETE);
    strcpy(big, "GET / HTTP/1.1\r\n");
    for (i = 0; i < HTTP_MAX_HEADERS + 1; i++) strcat(big, "X: y\r\n");
    strcat(big, "\r\n");
    BNT_CHECK(parse(big, &rq) == 431);
    free(big);
}

static void test_chunked(void) {
    const char *s = "5\r\nhello\r\n7;name=v\r\n, world\r\n0\r\nTrailer: t\r\n\r\nNEXT";
    size_t used = 0, n = 0, k;
    char out[64];
    int bad = 0;
    BNT_CHECK(http_chunked_body(s, strlen(s), 1000, &used, &n, NULL) == HTTP_DONE && n == 12 && used == strlen(s) - 4);
    BNT_CHECK(http_chunked_body(s, strlen(s), 1000, &used, &n, out) == HTTP_DONE && memcmp(out, "hello, world", 12) == 0);
    for (k = 0; k < strlen(s) - 4; k++)
        if (http_chunked_body(s, k, 1000, &used, &n, NULL) != HTTP_INCOMPLETE) bad++;
    BNT_CHECKF(bad == 0, "%d prefixes were not incomplete", bad);
    BNT_CHECK(http_chunked_body("a\nabcdefghij\n0\n\n", 17, 100, &used, &n, NULL) == HTTP_DONE && n == 10);
    BNT_CHECK(http_chunked_body("zz\r\nab\r\n0\r\n\r\n", 14, 100, &used, &n, NULL) == 400);
    BNT_CHECK(http_chunked_body("3\r\nabcXY", 8, 100, &used, &n, NULL) == 400); /* no line end after the data */
    BNT_CHECK(http_chunked_body("65\r\n", 4, 100, &used, &n, NULL) == 413);   /* 101 bytes > 100 */
    BNT_CHECK(http_chunked_body("ffffffffffffffffffffffff\r\n", 26, 100, &used, &n, NULL) == 413); /* no overflow */
    BNT_CHECK(http_chunked_body("40\r\n", 4, 100, &used, &n, NULL) == HTTP_INCOMPLETE);
}

static void test_response_head(void) {
    char h[512], line[16];
    size_t n = http_format_head(h, sizeof h, 404, "application/json", 17, 1, "X-A: b\r\n");
    BNT_CHECK(n == strlen(h) && strcmp(h, "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 17\r\n"
                                          "Connection: keep-alive\r\nX-A: b\r\n\r\n") == 0);
    http_format_head(h, sizeof h, 200, NULL, -1, 0, NULL);
    BNT_CHECK(strcmp(h, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n") == 0);
    BNT_CHECK(http_format_head(h, 20, 200, NULL, 5, 0, NULL) == 0); /* does not fit */
    BNT_CHECK(http_chunk_size_line(line, 300) == 5 && memcmp(line, "12c\r\n", 5) == 0);
}

/* ---------------------------------------------------------------- JSON writer, UTF-8 */

/* w's text parses as JSON (with the library's strict parser). */
static int valid_json(const jw *w, bn_json_doc *doc) {
    return bn_json_parse(doc, w->p, w->len, "jw", NULL) == BN_OK;
}

static void test_json_writer(void) {
    jw w;
    bn_json_doc doc;
    const bn_json *a;
    jw_init(&w);
    jw_obj(&w);
    jw_key(&w, "s");
    jw_cstr(&w, "q\"b\\n\n\t\x01 caf\xc3\xa9 \xf0\x9f\x98\x80 bad\xff\xc0");
    jw_key(&w, "a");
    jw_arr(&w);
    jw_int(&w, -3);
    jw_num(&w, 0.1f);
    jw_num(&w, 1.0 / 3.0);
    jw_num(&w, NAN);
    jw_bool(&w, 1);
    jw_null(&w);
    jw_obj(&w);
    jw_obj_end(&w);
    jw_arr_end(&w);
    jw_keyn(&w, "k\"ey", 4);
    jw_cstr(&w, NULL);
    jw_obj_end(&w);
    BNT_CHECKF(strcmp(w.p, "{\"s\":\"q\\\"b\\\\n\\n\\t\\u0001 caf\xc3\xa9 \xf0\x9f\x98\x80 bad\xef\xbf\xbd\xef\xbf\xbd\","
                           "\"a\":[-3,0.1,0.3333333333333333,null,true,null,{}],\"k\\\"ey\":null}") == 0, "%s", w.p);
    BNT_CHECK(valid_json(&w, &doc));
    a = bn_json_get(doc.root, "a");
    BNT_CHECK(a && a->len == 7 && (float)a->child[1].num == 0.1f && a->child[2].num == 1.0 / 3.0);
    bn_json_free(&doc);
    jw_reset(&w);
    jw_arr(&w);
    jw_arr_end(&w);
    BNT_CHECK(strcmp(w.p, "[]") == 0);
    jw_free(&w);
}

static void test_utf8(void) {
    size_t bad = 0;
    BNT_CHECK(utf8_valid("plain", 5, &bad));
    BNT_CHECK(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, &bad));   /* é € 😀 */
    BNT_CHECK(!utf8_valid("ab\xc0\x80", 4, &bad) && bad == 2);                 /* overlong NUL */
    BNT_CHECK(!utf8_valid("\xed\xa0\x80", 3, &bad) && bad == 0);               /* a surrogate */
    BNT_CHECK(!utf8_valid("\xf4\x90\x80\x80", 4, &bad));                        /* past U+10FFFF */
    BNT_CHECK(!utf8_valid("x\xe2\x82", 3, &bad) && bad == 1);                   /* cut short */
    BNT_CHECK(!utf8_valid("\x80", 1, &bad));                                     /* a lone continuation */
    /* the header's bn_utf8_char_len, which the writer uses: RFC 3629's table */
    BNT_CHECK(bn_utf8_char_len("A", 1) == 1 && bn_utf8_char_len("\xc3\xa9", 2) == 2 && bn_utf8_char_len("\xf0\x9f\x98\x80", 4) == 4);
    BNT_CHECK(bn_utf8_char_len("\xe0\xa0\x80", 3) == 3 && bn_utf8_char_len("\xe0\x9f\xbf", 3) == 0); /* overlong */
    BNT_CHECK(bn_utf8_char_len("\xed\xa0\x80", 3) == 0 && bn_utf8_char_len("\xc3", 1) == 0 && bn_utf8_char_len("", 0) == 0);
}

/* ---------------------------------------------------------------- OpenAI requests */

static oai_limits limits(void) {
    oai_limits l;
    memset(&l, 0, sizeof l);
    l.n_vocab = 1000;
    l.max_n = 8;
    l.sampler = bn_sampler_default_params();
    l.max_tokens = -1;
    l.seed = -1;
    return l;
}

/* Parses body; returns the status (200 when accepted) and leaves the request in r. */
static int req(oai_request *r, int chat, const char *body, api_error *e) {
    oai_limits l = limits();
    int ok = oai_parse_request(r, chat, body, strlen(body), &l, e);
    return ok ? 200 : e->status;
}

/* The status and param of a body that must be refused. */
static void refused(int chat, const char *body, const char *param, const char *code) {
    oai_request r;
    api_error e;
    int st = req(&r, chat, body, &e);
    BNT_CHECKF(st == 400 && ((!param && !e.param) || (param && e.param && strcmp(param, e.param) == 0)) &&
                   (!code || (e.code && strcmp(code, e.code) == 0)),
               "%s -> %d param %s code %s: %s", body, st, e.param ? e.param : "null", e.code ? e.code : "null", e.message);
    oai_request_free(&r);
}

static void test_chat_request(void) {
    oai_request r;
    api_error e;
    BNT_CHECK(req(&r, 1,
                  "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello, \"},{\"type\":\"text\",\"text\":\"there\"}]},"
                  "{\"role\":\"assistant\",\"content\":null}],\"temperature\":0.5,\"max_tokens\":7,\"max_completion_tokens\":9,"
                  "\"stop\":\"END\",\"n\":2,\"seed\":-5,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                  "\"logprobs\":true,\"top_logprobs\":3,\"logit_bias\":{\"17\":-100,\"3\":2.5},\"user\":\"ignored\"}",
                  &e) == 200);
    BNT_CHECK(r.n_messages == 3 && strcmp(r.messages[0].role, "system") == 0 && strcmp(r.messages[0].content, "Be brief.") == 0);
    BNT_CHECK(strcmp(r.messages[1].content, "Hello, there") == 0 && strcmp(r.messages[2].content, "") == 0);
    BNT_CHECK(r.sampler.temperature == 0.5f && r.sampler.top_k == 40 && r.sampler.top_p == 0.95f); /* the rest: defaults */
    BNT_CHECK(r.max_tokens == 9 && r.n_stop == 1 && strcmp(r.stop[0], "END") == 0 && r.n == 2);
    BNT_CHECK(r.has_seed && r.sampler.seed == (uint64_t)(int64_t)-5);
    BNT_CHECK(r.stream && r.include_usage && r.logprobs && r.top_logprobs == 3);
    BNT_CHECK(r.sampler.n_logit_bias == 2 && r.logit_bias[0].token == 17 && isinf(r.logit_bias[0].bias) &&
              r.logit_bias[0].bias < 0 && r.logit_bias[1].bias == 2.5f);
    oai_request_free(&r);
    BNT_CHECK(req(&r, 1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[],\"response_format\":{\"type\":\"text\"}}", &e) == 200);
    BNT_CHECK(r.max_tokens == -1 && r.n == 1 && !r.has_seed && r.n_stop == 0 && !r.stream && !r.logprobs);
    oai_request_free(&r);
}

/* The server's defaults (bitnet serve's generation options) for what a request leaves out. */
static void test_server_defaults(void) {
    static const char *const stops[] = {"\n\n", "END"};
    oai_limits l = limits();
    oai_request r;
    api_error e;
    l.seed = 77;
    l.stop = stops;
    l.n_stop = 2;
    l.ignore_eos = 1;
    l.max_tokens = 12;
    l.sampler.temperature = 0.25f;
    BNT_CHECK(oai_parse_request(&r, 0, "{\"prompt\":\"x\"}", 14, &l, &e));
    BNT_CHECK(r.has_seed && r.sampler.seed == 77 && r.n_stop == 2 && strcmp(r.stop[1], "END") == 0 && r.ignore_eos &&
              r.max_tokens == 12 && r.sampler.temperature == 0.25f);
    oai_request_free(&r);
    BNT_CHECK(oai_parse_request(&r, 0, "{\"prompt\":\"x\",\"seed\":5,\"stop\":\"Z\",\"ignore_eos\":false}", 53, &l, &e));
    BNT_CHECK(r.sampler.seed == 5 && r.n_stop == 1 && strcmp(r.stop[0], "Z") == 0 && !r.ignore_eos); /* the request's win */
    oai_request_free(&r);
}

static void test_completion_request(void) {
    oai_request r;
    api_error e;
    BNT_CHECK(req(&r, 0, "{\"prompt\":\"Once\",\"logprobs\":2,\"stop\":[\"a\",\"\",\"b\"],\"echo\":false,\"best_of\":1}", &e) == 200);
    BNT_CHECK(r.n_prompts == 1 && r.prompts[0].len == 4 && !r.prompts[0].ids && r.logprobs && r.top_logprobs == 2);
    BNT_CHECK(r.n_stop == 2); /* empty stop strings are dropped */
    oai_request_free(&r);
    BNT_CHECK(req(&r, 0, "{\"prompt\":[5,6,7]}", &e) == 200);
    BNT_CHECK(r.n_prompts == 1 && r.prompts[0].n_ids == 3 && r.prompts[0].ids[2] == 7);
    oai_request_free(&r);
    BNT_CHECK(req(&r, 0, "{\"prompt\":[[1],[2,3]],\"logprobs\":0}", &e) == 200);
    BNT_CHECK(r.n_prompts == 2 && r.prompts[1].n_ids == 2 && r.logprobs && r.top_logprobs == 0);
    oai_request_free(&r);
    BNT_CHECK(req(&r, 0, "{\"prompt\":[\"a\",\"bc\"]}", &e) == 200);
    BNT_CHECK(r.n_prompts == 2 && r.prompts[1].len == 2);
    oai_request_free(&r);
}

static void test_refusals(void) {
    oai_request r;
    api_error e;
    refused(1, "{\"messages\":[}", NULL, "invalid_json");
    refused(1, "[1,2]", "body", "invalid_type");
    refused(1, "{\"messages\":\"hi\"}", "messages", "invalid_type");
    refused(1, "{}", "messages", "missing_required_parameter");
    refused(1, "{\"messages\":[]}", "messages", "empty_array");
    refused(1, "{\"messages\":[5]}", "messages", "invalid_type");
    refused(1, "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages.role", "invalid_value");
    refused(1, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages.role", "unsupported_parameter");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "messages.content", "invalid_type");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "messages.content", "unsupported_parameter");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "messages.content", "invalid_value");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}", "temperature", "invalid_type");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":2.5}", "temperature", "invalid_value");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", "top_logprobs", "invalid_value");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs", "invalid_value");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\"}]}", "tools", "unsupported_parameter");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_object\"}}", "response_format", "unsupported_parameter");
    refused(1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":true}", "stream_options", "invalid_type");
    refused(0, "{\"prompt\":{}}", "prompt", "invalid_type");
    refused(0, "{\"prompt\":[]}", "prompt", "empty_array");
    refused(0, "{\"prompt\":[[]]}", "prompt", "invalid_type");
    refused(0, "{\"prompt\":[1.5]}", "prompt", "invalid_type");
    refused(0, "{\"prompt\":[1000]}", "prompt", "invalid_value"); /* the vocabulary is [0, 1000) */
    refused(0, "{\"prompt\":[\"a\",5]}", "prompt", "invalid_type");
    refused(0, "{\"prompt\":\"x\",\"max_tokens\":\"9\"}", "max_tokens", "invalid_type");
    refused(0, "{\"prompt\":\"x\",\"max_tokens\":-1}", "max_tokens", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"n\":0}", "n", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"n\":9}", "n", "invalid_value"); /* max_n is 8 here */
    refused(0, "{\"prompt\":\"x\",\"stop\":[1]}", "stop", "invalid_type");
    refused(0, "{\"prompt\":\"x\",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}", "stop", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"logit_bias\":[1]}", "logit_bias", "invalid_type");
    refused(0, "{\"prompt\":\"x\",\"logit_bias\":{\"x1\":1}}", "logit_bias", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"logit_bias\":{\"1\":101}}", "logit_bias", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"seed\":1.5}", "seed", "invalid_type");
    refused(0, "{\"prompt\":\"x\",\"logprobs\":6}", "logprobs", "invalid_value");
    refused(0, "{\"prompt\":\"x\",\"echo\":true}", "echo", "unsupported_parameter");
    refused(0, "{\"prompt\":\"x\",\"suffix\":\"y\"}", "suffix", "unsupported_parameter");
    refused(0, "{\"prompt\":\"x\",\"best_of\":3}", "best_of", "unsupported_parameter");
    refused(0, "{\"prompt\":\"x\",\"model\":5}", "model", "invalid_type");
    BNT_CHECK(req(&r, 0, "{\"prompt\":\"caf\xe9\"}", &e) == 400 && strcmp(e.code, "invalid_encoding") == 0);
    oai_request_free(&r);
}

/* Whether a grammar (GBNF text) accepts text as a whole. */
static int grammar_accepts(const char *gbnf, const char *text) {
    bn_grammar *g = NULL;
    bn_grammar_matcher *m = NULL;
    int ok = bn_grammar_parse(&g, gbnf, strlen(gbnf), NULL, NULL) == BN_OK &&
             bn_grammar_matcher_new(&m, g, NULL) == BN_OK && bn_grammar_matcher_accept_bytes(m, text, strlen(text)) &&
             bn_grammar_matcher_can_end(m);
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);
    return ok;
}

/* A chat request with this response_format, parsed under l. */
static int parse_rf(oai_request *r, const char *rf, const oai_limits *l, api_error *e) {
    char body[1024];
    snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":%s}", rf);
    return oai_parse_request(r, 1, body, strlen(body), l, e);
}

/* response_format: text, json_object and json_schema become the sampler's grammar; a schema
   outside the subset is a 400 naming the keyword (param response_format). */
static void test_response_format(void) {
    bn_tokenizer *tok = NULL;
    bn_grammar_vocab *vocab = NULL;
    oai_limits l = limits();
    oai_request r;
    api_error e;
    BNT_CHECK(bn_tokenizer_load(&tok, "models/shakespeare", NULL) == BN_OK);
    BNT_CHECK(tok && bn_grammar_vocab_new(&vocab, tok, NULL, 0, NULL) == BN_OK);
    if (!vocab) {
        bn_tokenizer_free(tok);
        return;
    }
    l.grammar_vocab = vocab;
    /* json_object: any JSON object, nothing else */
    BNT_CHECK(parse_rf(&r, "{\"type\":\"json_object\"}", &l, &e));
    BNT_CHECK(r.sampler.grammar && r.sampler.grammar_vocab == vocab && !r.sampler.json_schema);
    BNT_CHECK(r.sampler.grammar && grammar_accepts(r.sampler.grammar, "{\"a\": [1, -2.5e3, true, null, \"\\u00e9\"], \"b\": {}}"));
    BNT_CHECK(r.sampler.grammar && grammar_accepts(r.sampler.grammar, "{}"));
    BNT_CHECK(r.sampler.grammar && !grammar_accepts(r.sampler.grammar, "[1]") && !grammar_accepts(r.sampler.grammar, "{\"a\":}"));
    oai_request_free(&r);
    /* json_schema: the schema's instances only; completions take it too */
    BNT_CHECK(oai_parse_request(&r, 0,
                                "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"p\","
                                "\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},"
                                "\"c\":{\"enum\":[\"red\",\"blue\"]}},\"required\":[\"n\",\"c\"],\"additionalProperties\":false}}}}",
                                strlen("{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"p\","
                                       "\"strict\":true,\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"},"
                                       "\"c\":{\"enum\":[\"red\",\"blue\"]}},\"required\":[\"n\",\"c\"],\"additionalProperties\":false}}}}"),
                                &l, &e));
    BNT_CHECK(r.sampler.grammar && grammar_accepts(r.sampler.grammar, "{\"n\": 12, \"c\": \"blue\"}"));
    BNT_CHECK(r.sampler.grammar && !grammar_accepts(r.sampler.grammar, "{\"n\": 1.5, \"c\": \"blue\"}") &&
              !grammar_accepts(r.sampler.grammar, "{\"n\": 1, \"c\": \"green\"}") &&
              !grammar_accepts(r.sampler.grammar, "{\"c\": \"red\"}"));
    oai_request_free(&r);
    /* text: no grammar, also over a server default (--json) */
    l.sampler.grammar = "root ::= \"x\"";
    l.sampler.grammar_vocab = vocab;
    BNT_CHECK(parse_rf(&r, "{\"type\":\"text\"}", &l, &e) && !r.sampler.grammar);
    oai_request_free(&r);
    BNT_CHECK(oai_parse_request(&r, 1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 44, &l, &e) &&
              r.sampler.grammar == l.sampler.grammar); /* no response_format: the server's */
    oai_request_free(&r);
    l.sampler.grammar = NULL;
    /* refusals */
    {
        static const struct {
            const char *rf, *param, *code, *says;
        } bad[] = {
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{\"type\":\"object\",\"properties\":"
             "{\"a\":{\"type\":\"integer\",\"minimum\":3}}}}}",
             "response_format", "unsupported_value", "/properties/a: keyword 'minimum'"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{\"not\":{}}}}", "response_format",
             "unsupported_value", "keyword 'not'"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{\"type\":\"wat\"}}}", "response_format",
             "invalid_value", "unknown type 'wat'"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":{\"$ref\":\"#\"}}}", "response_format",
             "invalid_value", "$ref '#' refers to itself"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\"}}", "response_format.json_schema.schema",
             "missing_required_parameter", "schema"},
            {"{\"type\":\"json_schema\"}", "response_format.json_schema", "missing_required_parameter", "json_schema"},
            {"{\"type\":\"json_schema\",\"json_schema\":[]}", "response_format.json_schema", "invalid_type", "an object"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"name\":5,\"schema\":{}}}", "response_format.json_schema.name",
             "invalid_type", "a string"},
            {"{\"type\":\"json_schema\",\"json_schema\":{\"strict\":\"yes\",\"schema\":{}}}",
             "response_format.json_schema.strict", "invalid_type", "a boolean"},
            {"{\"type\":\"xml\"}", "response_format.type", "invalid_value", "json_schema"},
            {"{}", "response_format.type", "missing_required_parameter", "type"},
            {"\"json\"", "response_format", "invalid_type", "an object"},
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int ok = parse_rf(&r, bad[i].rf, &l, &e);
            BNT_CHECKF(!ok && e.status == 400 && e.param && strcmp(e.param, bad[i].param) == 0 && e.code &&
                           strcmp(e.code, bad[i].code) == 0 && strstr(e.message, bad[i].says) &&
                           strcmp(e.type, "invalid_request_error") == 0,
                       "%s -> %d %s %s: %s", bad[i].rf, ok ? 200 : e.status, e.param ? e.param : "null",
                       e.code ? e.code : "null", e.message);
            oai_request_free(&r);
        }
    }
    bn_grammar_vocab_free(vocab);
    bn_tokenizer_free(tok);
}

static void test_tokenize_bodies(void) {
    bn_json_doc doc;
    api_error e;
    const char *text;
    size_t len;
    int add, parse_sp, n;
    int32_t *ids;
    BNT_CHECK(oai_parse_tokenize("{\"content\":\"hi\",\"add_special\":true}", 35, &doc, &text, &len, &add, &parse_sp, &e) &&
              len == 2 && add == 1 && parse_sp == 0);
    bn_json_free(&doc);
    BNT_CHECK(!oai_parse_tokenize("{\"content\":3}", 13, &doc, &text, &len, &add, &parse_sp, &e) && e.status == 400);
    bn_json_free(&doc);
    BNT_CHECK(oai_parse_detokenize("{\"tokens\":[1,2]}", 16, 10, &ids, &n, &e) && n == 2 && ids[1] == 2);
    free(ids);
    BNT_CHECK(!oai_parse_detokenize("{\"tokens\":[1,20]}", 17, 10, &ids, &n, &e) && e.status == 400 && ids == NULL);
}

/* ---------------------------------------------------------------- logprobs and responses */

static void test_logprobs(void) {
    float logits[257];
    oai_logprob lp;
    uint64_t rng = 42;
    double sum = 0.0, max = -1e30;
    int i, k, order[257], ok = 1;
    for (i = 0; i < 257; i++) logits[i] = (float)(bn_rng_uniform(&rng) * 20.0 - 10.0);
    logits[100] = logits[200]; /* a tie: the lower id first */
    for (i = 0; i < 257; i++) max = logits[i] > max ? logits[i] : max;
    for (i = 0; i < 257; i++) sum += exp(logits[i] - max);
    oai_logprob_from_logits(&lp, logits, 257, 33, 5);
    BNT_CHECKF(fabs(lp.logprob - (logits[33] - max - log(sum))) < 1e-5, "%g", (double)lp.logprob);
    /* the reference order: every id, by logit, ties by id (a plain selection sort) */
    for (i = 0; i < 257; i++) order[i] = i;
    for (i = 0; i < 5; i++)
        for (k = i + 1; k < 257; k++)
            if (logits[order[k]] > logits[order[i]] || (logits[order[k]] == logits[order[i]] && order[k] < order[i])) {
                int t = order[i];
                order[i] = order[k];
                order[k] = t;
            }
    BNT_CHECK(lp.n_top == 5);
    for (i = 0; i < 5; i++) ok &= lp.top_token[i] == order[i] && fabs(lp.top_logprob[i] - (logits[order[i]] - max - log(sum))) < 1e-5;
    BNT_CHECK(ok);
    oai_logprob_from_logits(&lp, logits, 257, 100, 0);
    BNT_CHECK(lp.n_top == 0);
}

static void test_response_bodies(void) {
    jw w;
    bn_json_doc doc;
    oai_meta m = {"chatcmpl-1", "shakespeare", 1700000000, NULL};
    oai_choice_view v[2];
    oai_usage u = {5, 7, 0};
    const bn_json *c;
    memset(v, 0, sizeof v);
    v[0].text = "Hi \"you\"";
    v[0].len = 8;
    v[0].finish_reason = "stop";
    v[1].index = 1;
    v[1].text = "";
    v[1].finish_reason = "length";
    jw_init(&w);
    oai_write_response(&w, 1, &m, v, 2, &u);
    BNT_CHECK(valid_json(&w, &doc));
    c = bn_json_get(doc.root, "choices");
    BNT_CHECK(bn_json_streq(bn_json_get(doc.root, "object"), "chat.completion") && c && c->len == 2);
    BNT_CHECK(bn_json_streq(bn_json_get(bn_json_get(&c->child[0], "message"), "content"), "Hi \"you\""));
    BNT_CHECK(bn_json_streq(bn_json_get(bn_json_get(&c->child[0], "message"), "role"), "assistant"));
    BNT_CHECK(bn_json_streq(bn_json_get(&c->child[1], "finish_reason"), "length"));
    BNT_CHECK(bn_json_number(bn_json_get(doc.root, "usage"), "total_tokens", 0) == 12);
    bn_json_free(&doc);
    jw_reset(&w);
    v[0].finish_reason = NULL;
    oai_write_chunk(&w, 0, &m, &v[0], 0, 1);
    BNT_CHECK(valid_json(&w, &doc));
    c = bn_json_get(doc.root, "choices");
    BNT_CHECK(bn_json_streq(bn_json_get(doc.root, "object"), "text_completion") && c->len == 1 &&
              bn_json_streq(bn_json_get(&c->child[0], "text"), "Hi \"you\"") &&
              bn_json_get(&c->child[0], "finish_reason")->type == BN_JSON_NULL &&
              bn_json_get(doc.root, "usage")->type == BN_JSON_NULL);
    bn_json_free(&doc);
    jw_free(&w);
}

int main(void) {
    BNT_RUN(test_request_line_and_headers);
    BNT_RUN(test_incomplete_prefixes);
    BNT_RUN(test_keep_alive);
    BNT_RUN(test_malformed_heads);
    BNT_RUN(test_head_limits);
    BNT_RUN(test_chunked);
    BNT_RUN(test_response_head);
    BNT_RUN(test_json_writer);
    BNT_RUN(test_utf8);
    BNT_RUN(test_chat_request);
    BNT_RUN(test_completion_request);
    BNT_RUN(test_server_defaults);
    BNT_RUN(test_refusals);
    BNT_RUN(test_response_format);
    BNT_RUN(test_tokenize_bodies);
    BNT_RUN(test_logprobs);
    BNT_RUN(test_response_bodies);
    return bnt_finish("test_serve_api");
}
