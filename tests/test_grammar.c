/* Grammars: the matcher alone on strings each grammar must accept and
   reject; bad grammars and schemas refused with their line and column or
   keyword; the token masks against a token-by-token check on the LLaMA 3
   vocabulary; the sampler's rules; then generation under each grammar and
   schema with many seeds and temperatures, on models/shakespeare and on a
   random model with the LLaMA 3 tokenizer, every text checked by
   tests/grammar_check.py (Python's json and a JSON Schema validator written
   there from the specification). */
#define BITNET_IMPLEMENTATION
#include "../bitnet.h"
#include "harness.h"

#include <sys/stat.h>

#define TMP "build/tmp"
#define LLAMA3 BNT_FIXTURES "/tokenizers/llama3"

/* ---------- the matcher on strings ---------- */

static bn_grammar *compile(const char *text) {
    bn_grammar *g = NULL;
    bn_error err;
    if (bn_grammar_parse(&g, text, strlen(text), NULL, &err) != BN_OK) printf("  grammar: %s\n", err.msg);
    return g;
}

/* 2: a whole text of the grammar, 1: the start of one, 0: neither. Fed in
   one piece, then byte by byte (a fresh matcher), which must agree. */
static int match(const bn_grammar *g, const char *s) {
    bn_grammar_matcher *m = NULL, *m2 = NULL;
    size_t i, n = strlen(s);
    int r, r2 = 2;
    if (!g || bn_grammar_matcher_new(&m, g, NULL) || bn_grammar_matcher_new(&m2, g, NULL)) return -1;
    r = !bn_grammar_matcher_accept_bytes(m, s, n) ? 0 : bn_grammar_matcher_can_end(m) ? 2 : 1;
    for (i = 0; i < n && r2; i++)
        if (!bn_grammar_matcher_accept_bytes(m2, s + i, 1)) r2 = 0;
    if (r2) r2 = bn_grammar_matcher_can_end(m2) ? 2 : 1;
    BNT_CHECKF(r == r2, "'%s': whole %d, byte by byte %d", s, r, r2);
    bn_grammar_matcher_free(m);
    bn_grammar_matcher_free(m2);
    return r;
}

/* Every string in yes is accepted whole, in pre is a proper start, in no is rejected. */
static void expect(const char *grammar, const char *const *yes, const char *const *pre, const char *const *no) {
    bn_grammar *g = compile(grammar);
    BNT_CHECK(g != NULL);
    for (; yes && *yes; yes++) BNT_CHECKF(match(g, *yes) == 2, "should accept '%s'", *yes);
    for (; pre && *pre; pre++) BNT_CHECKF(match(g, *pre) == 1, "should be a start: '%s'", *pre);
    for (; no && *no; no++) BNT_CHECKF(match(g, *no) == 0, "should reject '%s'", *no);
    bn_grammar_free(g);
}

static const char *ARITH = "root ::= expr\n"
                           "expr ::= term ((\"+\" | \"-\") term)*\n"
                           "term ::= factor ((\"*\" | \"/\") factor)*\n"
                           "factor ::= [0-9]+ | \"(\" expr \")\"\n";

static void test_arithmetic(void) {
    static const char *yes[] = {"1", "12+3", "(1+2)*3", "((7))", "1*2/3-4+5", "(((1+2)*(3-4))/5)", NULL};
    static const char *pre[] = {"", "1+", "(", "((1+2)*", "12*(3-", NULL};
    static const char *no[] = {"+1", "1++2", "()", "1)", "(1+2))", "a", "1 + 2", "1+2)", NULL};
    expect(ARITH, yes, pre, no);
}

static const char *COMMANDS = "root ::= verb \" \" object | \"quit\"\n"
                              "verb ::= \"go\" | \"look\" | \"take\"\n"
                              "object ::= \"north\" | \"south\" | \"lamp\"\n";

static void test_commands(void) {
    static const char *yes[] = {"go north", "take lamp", "look south", "quit", NULL};
    static const char *pre[] = {"", "g", "go ", "take la", "qui", NULL};
    static const char *no[] = {"go", "go  north", "go west", "quit now", "run north", "go north ", NULL};
    static const char *pre_go[] = {"go", NULL};
    expect(COMMANDS, yes, pre, no + 1);
    expect(COMMANDS, NULL, pre_go, NULL); /* "go" is a start, not a command */
}

/* Full JSON, as in llama.cpp's json.gbnf. */
static const char *JSON_GBNF =
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
    "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\bfnrt] | \"u\" [0-9a-fA-F]{4}) )* \"\\\"\" ws\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

static void test_nested_json(void) {
    static const char *yes[] = {"{}", "{\"a\": 1}", "{\"a\": [1, 2.5, -3e4, {\"b\": null}], \"c\": \"x\\\"y\\u00e9\"}",
                                "{\"k\": {\"k\": {\"k\": [[], {}, true, false]}}}", "{\"\xc3\xa9\xe2\x82\xac\": \"\xf0\x9f\x98\x80\"}",
                                "{ \"a\" :1 }", NULL};
    static const char *pre[] = {"{", "{\"a\": [1, {\"b\": [", "{\"a\": \"unfinished", "{\"a\": tr", "{\"a\": \"\\u00",
                                "{\"a\": \"\xe2\x82", NULL};
    static const char *no[] = {"[]", "{\"a\" 1}", "{\"a\": 01}", "{\"a\": [1,]}", "{'a': 1}", "{\"a\": \"\\x\"}",
                               "{\"a\": tru}", "{\"a\": \"\x01\"}", "{\"a\": \"\xc0\x80\"}", "{\"a\": \"\xed\xa0\x80\"}",
                               "{} {}", NULL};
    expect(JSON_GBNF, yes, pre, no);
}

static void test_unicode_classes(void) {
    static const char *yes1[] = {"\xce\xb1\xce\xb2\xce\xb3", "\xcf\x89", NULL};       /* αβγ, ω */
    static const char *pre1[] = {"\xce", "\xce\xb1\xce", "\xcf", NULL};              /* a character cut in two */
    static const char *no1[] = {"a", "\xce\x91", "\xce\xb1 ", "\xcf\x8a", "\xce\xb1\x80", NULL}; /* Α (capital), ϊ after ω */
    static const char *yes2[] = {"X", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", NULL};
    static const char *no2[] = {"a", "z", "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff", NULL};
    static const char *yes3[] = {"caf\xc3\xa9 \xe2\x82\xac", "caf\xc3\xa9 $", NULL};
    static const char *no3[] = {"cafe \xe2\x82\xac", "caf\xc3\xa9 \xc2\xa3", NULL};
    static const char *yes4[] = {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x8f", "\xe2\x98\x80", NULL};
    static const char *pre4[] = {"\xf0\x9f\x98", "\xf0\x9f", NULL};
    static const char *no4[] = {"\xf0\x9f\x98\x90", "\xf0\x9f\x99\x80", "\xe2\x98\x81", NULL};
    expect("root ::= [\xce\xb1-\xcf\x89]+", yes1, pre1, no1);                            /* [α-ω]+ */
    expect("root ::= [^a-z]", yes2, NULL, no2);                                          /* one character, not a-z */
    expect("root ::= \"caf\\u00e9 \" (\"\\u20AC\" | \"$\")", yes3, NULL, no3);            /* escapes in literals */
    expect("root ::= [\\U0001F600-\\U0001F60F\\u2600]", yes4, pre4, no4);                /* 4-byte ranges */
}

static void test_repetition_bounds(void) {
    static const char *yes[] = {"aaabbd", "aaabbbbccddd", "aaabbbcd", NULL};
    static const char *pre[] = {"aa", "aaab", "aaabbc", NULL};
    static const char *no[] = {"aabbd", "aaaabbd", "aaabd", "aaabbcccd", "aaabbdddd", NULL};
    static const char *yes2[] = {"", "xyxy", "xyxyxyxy", NULL};
    static const char *no2[] = {"xyx y", "xyxyxyxyxy", "xyy", NULL};
    static const char *yes3[] = {"ab", "abab", NULL};
    static const char *no3[] = {"ababab", NULL};
    static const char *yes4[] = {".", "....", NULL};
    static const char *no4[] = {".....", NULL};
    expect("root ::= \"a\"{3} \"b\"{2,} \"c\"{,2} \"d\"{1,3}", yes, pre, no);
    expect("root ::= (\"x\" \"y\"){0,4}", yes2, NULL, no2);
    expect("root ::= \"ab\"{1,2}", yes3, NULL, no3); /* a literal repeats whole */
    expect("root ::= [.]{1,4}", yes4, NULL, no4);
}

/* A step follows at most 65,536 grammar positions: ("x"?){10000} needs about 50,000 and
   works; ((x?){200}){200} needs 200,000 and is refused, as a grammar ambiguous beyond use.
   (A fuzzed grammar of such classes cost 7 ms a byte under the former bound of 2^20.) */
static void test_ambiguity_bound(void) {
    static const char *yes[] = {"y", "xxxy", NULL};
    static const char *no[] = {"xxxyy", NULL};
    bn_grammar *g = compile("root ::= (\"x\"?){10000} \"y\"");
    bn_grammar_matcher *m = NULL;
    bn_error err;
    BNT_CHECK(g != NULL);
    bn_grammar_free(g);
    expect("root ::= (\"x\"?){10000} \"y\"", yes, NULL, no);
    g = compile("root ::= ((\"x\"?){200}){200} \"y\"");
    BNT_CHECK(g != NULL);
    if (!g) return;
    BNT_CHECK(bn_grammar_matcher_new(&m, g, &err) == BN_ERR_UNSUPPORTED);
    BNT_CHECKF(strstr(err.msg, "too ambiguous") != NULL, "%s", err.msg);
    bn_grammar_free(g);
}

static void test_syntax_details(void) {
    static const char *yes[] = {"x-y", "y-y", NULL};
    static const char *yes2[] = {"\t|\n", NULL};
    static const char *yes3[] = {"ok", NULL};
    static const char *yes4[] = {"", "a", NULL};
    /* alternatives over lines, comments, names with - and _, spaces inside {} */
    expect("# a comment\nroot ::= my-rule \"-\" other_rule # trailing\n"
           "my-rule ::= \"x\"\n   | \"y\"\nother_rule ::= (\n  \"y\"\n)\n",
           yes, NULL, NULL);
    expect("root ::= [\\t] \"|\" \"\\n\"", yes2, NULL, NULL);
    {
        bn_grammar *g = NULL;
        BNT_CHECK(bn_grammar_parse(&g, "start ::= \"ok\"", 14, "start", NULL) == BN_OK);
        BNT_CHECK(g && match(g, "ok") == 2);
        bn_grammar_free(g);
    }
    expect("root ::= \"a\"?", yes4, NULL, NULL);
    expect("root ::= ok\nok ::= \"o\" \"k\"", yes3, NULL, NULL);
}

/* The matcher's automaton survives emptying its cache mid-text (BN_GRAMMAR_CACHE_BYTES). */
static void test_cache_flush(void) {
    bn_grammar *g = compile(JSON_GBNF);
    bn_grammar_matcher *m = NULL;
    const char *text = "{\"a\": [1, {\"b\": [true, \"x\\u00e9\"]}], \"c\": {\"d\": null}}";
    size_t i;
    BNT_CHECK(g && bn_grammar_matcher_new(&m, g, NULL) == BN_OK);
    if (!m) return;
    m->cache_limit = 1; /* over budget at every step */
    for (i = 0; text[i]; i++) BNT_CHECKF(bn_grammar_matcher_accept_bytes(m, text + i, 1), "byte %d", (int)i);
    BNT_CHECK(bn_grammar_matcher_can_end(m));
    BNT_CHECK(m->n_sets < 40); /* only what the last steps made */
    bn_grammar_matcher_reset(m);
    BNT_CHECK(bn_grammar_matcher_accept_bytes(m, "{}", 2) && bn_grammar_matcher_can_end(m));
    bn_grammar_matcher_free(m);
    bn_grammar_free(g);
}

/* ---------- bad grammars ---------- */

static void bad(const char *text, int line, int col, const char *what) {
    bn_grammar *g = NULL;
    bn_error err;
    char where[64];
    bn_status st = bn_grammar_parse(&g, text, strlen(text), NULL, &err);
    BNT_CHECKF(st == BN_ERR_FORMAT && g == NULL, "'%s' was accepted", text);
    if (st != BN_ERR_FORMAT) return;
    snprintf(where, sizeof where, "line %d, column %d:", line, col);
    BNT_CHECKF(line == 0 || strstr(err.msg, where), "'%s': expected %s, got: %s", text, where, err.msg);
    BNT_CHECKF(strstr(err.msg, what) != NULL, "'%s': expected '%s' in: %s", text, what, err.msg);
}

static void test_bad_grammars(void) {
    char deep[400];
    int i;
    bad("root ::= (\"a\" | \"b\"", 1, 10, "unbalanced '('");
    bad("root ::= (\"a\"\n  | (\"b\" \"c\"\n)", 1, 10, "unbalanced '('");
    bad("root ::= \"a\" )", 1, 14, "unbalanced ')'");
    bad("root ::= x\nx ::= (\"a\"))", 2, 12, "unbalanced ')'");
    bad("root ::= foo", 1, 10, "undefined rule 'foo'");
    bad("root ::= a\na ::= \"x\" bar \"y\"", 2, 11, "undefined rule 'bar'");
    bad("root ::= a\na ::= a \"x\" | \"y\"", 2, 1, "left recursion: rule 'a'");
    bad("root ::= a\na ::= b \"x\"\nb ::= c | \"z\"\nc ::= a", 0, 0, "left recursion");
    bad("root ::= a\na ::= n a \"x\" | \"y\"\nn ::= \"q\"?", 2, 1, "left recursion: rule 'a'"); /* n can be empty */
    bad("root ::= (\"a\"?)*", 1, 16, "left recursion"); /* repeats something empty */
    bad("root ::= []", 1, 10, "empty character class");
    bad("root ::= \"a\" [^\\x00-\\U0010FFFF]", 1, 14, "empty character class");
    bad("root ::= [\\uD800-\\uDFFF]", 1, 10, "empty character class"); /* surrogates only */
    bad("root ::= \"abc", 1, 10, "unterminated string");
    bad("root ::= [abc", 1, 10, "unterminated character class");
    bad("root ::= \"\\q\"", 1, 11, "unknown escape");
    bad("root ::= \"\\u12\"", 1, 11, "hexadecimal");
    bad("root ::= \"\\U00110000\"", 1, 11, "beyond U+10FFFF");
    bad("root ::= [z-a]", 1, 11, "ends");
    bad("root ::= \"a\"{3,2}", 1, 13, "below the minimum");
    bad("root ::= \"a\"{99999}", 1, 13, "larger than");
    bad("root ::= * \"a\"", 1, 10, "must follow a symbol");
    bad("root = \"a\"", 1, 6, "expected '::='");
    bad("root ::= \"x\" root", 1, 1, "can never finish");
    bad("root ::= x\nx ::= \"a\"\nx ::= \"b\"", 3, 1, "defined twice");
    bad("foo ::= \"a\"", 0, 0, "no rule named 'root'");
    bad("", 0, 0, "no rule named 'root'");
    bad("root ::= \"\xc3\"", 1, 11, "invalid UTF-8");
    bad("root ::= \"a\" \"\n\"", 1, 14, "unterminated string");
    bad("root ::= \"a\" @", 1, 14, "unexpected character");
    for (i = 0; i < 100; i++) deep[i] = '(';
    memcpy(deep + 100, "\"a\"", 4);
    {
        char text[420];
        snprintf(text, sizeof text, "root ::= %s", deep);
        bad(text, 1, 74, "nested deeper than 64");
    }
}

/* ---------- JSON Schema conversion ---------- */

static char *schema_gbnf(const char *schema, bn_status *st, bn_error *err) {
    char *g = NULL;
    *st = bn_json_schema_to_gbnf(schema, strlen(schema), &g, NULL, err);
    return g;
}

static void schema_bad(const char *schema, bn_status want, const char *what) {
    bn_error err;
    bn_status st;
    char *g = schema_gbnf(schema, &st, &err);
    BNT_CHECKF(st == want && g == NULL, "%s: status %d", schema, (int)st);
    if (st != BN_OK) BNT_CHECKF(strstr(err.msg, what) != NULL, "%s: expected '%s' in: %s", schema, what, err.msg);
    bn_free(g);
}

static void test_schema_unsupported(void) {
    schema_bad("{\"type\": \"integer\", \"minimum\": 3}", BN_ERR_UNSUPPORTED, "keyword 'minimum'");
    schema_bad("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\", \"multipleOf\": 2}}}", BN_ERR_UNSUPPORTED,
               "/properties/a: keyword 'multipleOf'");
    schema_bad("{\"type\": \"array\", \"prefixItems\": [{}]}", BN_ERR_UNSUPPORTED, "keyword 'prefixItems'");
    schema_bad("{\"type\": \"array\", \"uniqueItems\": true}", BN_ERR_UNSUPPORTED, "'uniqueItems'");
    schema_bad("{\"not\": {\"type\": \"null\"}}", BN_ERR_UNSUPPORTED, "keyword 'not'");
    schema_bad("{\"if\": {}, \"then\": {}}", BN_ERR_UNSUPPORTED, "keyword 'if'");
    schema_bad("{\"type\": \"object\", \"patternProperties\": {}}", BN_ERR_UNSUPPORTED, "keyword 'patternProperties'");
    schema_bad("{\"type\": \"string\", \"format\": \"email\"}", BN_ERR_UNSUPPORTED, "format 'email'");
    schema_bad("{\"$ref\": \"https://example.com/s.json\"}", BN_ERR_UNSUPPORTED, "$ref");
    schema_bad("{\"$ref\": \"#/$defs/missing\"}", BN_ERR_FORMAT, "points to nothing");
    /* a reference that reaches itself before any character has no finite value (found by fuzzing) */
    schema_bad("{\"$ref\": \"#\"}", BN_ERR_FORMAT, "$ref '#' refers to itself before any character");
    schema_bad("{\"anyOf\": [{\"type\": \"null\"}, {\"$ref\": \"#\"}]}", BN_ERR_FORMAT, "refers to itself");
    schema_bad("{\"$defs\": {\"a\": {\"allOf\": [{\"$ref\": \"#/$defs/b\"}]}, \"b\": {\"$ref\": \"#/$defs/a\"}},"
               " \"$ref\": \"#/$defs/a\"}", BN_ERR_FORMAT, "refers to itself");
    schema_bad("{\"type\": \"string\", \"pattern\": \"(a)\\\\1\"}", BN_ERR_UNSUPPORTED, "pattern");
    schema_bad("{\"type\": \"string\", \"pattern\": \"a(?=b)\"}", BN_ERR_UNSUPPORTED, "lookaround");
    schema_bad("{\"type\": \"string\", \"pattern\": \"a^b\"}", BN_ERR_UNSUPPORTED, "'^'");
    schema_bad("{\"allOf\": [{}, {}]}", BN_ERR_UNSUPPORTED, "allOf");
    schema_bad("{\"type\": \"object\", \"properties\": {}, \"required\": [\"a\"]}", BN_ERR_UNSUPPORTED, "'a'");
    schema_bad("{\"type\": \"wat\"}", BN_ERR_FORMAT, "unknown type 'wat'");
    schema_bad("{\"type\": \"string\", \"maxLength\": -1}", BN_ERR_UNSUPPORTED, "maxLength");
    schema_bad("{\"type\": ", BN_ERR_FORMAT, "invalid JSON");
    schema_bad("false", BN_ERR_UNSUPPORTED, "false");
    schema_bad("[1]", BN_ERR_FORMAT, "object or a boolean");
    /* a schema is text: invalid UTF-8 in a string would become a literal no grammar can hold (found by fuzzing) */
    schema_bad("{\"enum\": [\"re\x98" "d\"]}", BN_ERR_FORMAT, "invalid UTF-8 at byte offset 13");
    schema_bad("{\"const\": \"\xc3\"}", BN_ERR_FORMAT, "invalid UTF-8 at byte offset 11");
    /* a repeated group that can match nothing would be a left-recursive rule (found by fuzzing) */
    schema_bad("{\"type\": \"string\", \"pattern\": \"(?:|bac)+\"}", BN_ERR_UNSUPPORTED, "can match nothing");
    schema_bad("{\"type\": \"string\", \"pattern\": \"^(a*b?){2,}$\"}", BN_ERR_UNSUPPORTED, "can match nothing");
}

/* A schema's grammar, matched against strings (the conversion alone). */
static void schema_expect(const char *schema, const char *const *yes, const char *const *no) {
    bn_error err;
    bn_status st;
    char *text = schema_gbnf(schema, &st, &err);
    bn_grammar *g = NULL;
    BNT_CHECKF(st == BN_OK, "%s: %s", schema, err.msg);
    if (text && bn_grammar_parse(&g, text, strlen(text), NULL, &err) != BN_OK) printf("  %s\n%s\n", err.msg, text);
    BNT_CHECK(g != NULL);
    for (; g && yes && *yes; yes++) BNT_CHECKF(match(g, *yes) == 2, "%s should accept %s", schema, *yes);
    for (; g && no && *no; no++) BNT_CHECKF(match(g, *no) != 2, "%s should refuse %s", schema, *no);
    bn_grammar_free(g);
    bn_free(text);
}

static void test_schema_grammars(void) {
    static const char *y1[] = {"{\"b\": \"xy\"}", "{\"a\": 1, \"b\": \"\"}", "{\"b\": \"x\", \"c\": true}",
                               "{\"a\": -2, \"b\": \"abc\", \"c\": false}", " {\"b\":\"q\"}", NULL};
    static const char *n1[] = {"{}", "{\"a\": 1}", "{\"b\": \"abcd\"}", "{\"b\": \"x\", \"a\": 1}", "{\"b\": \"x\",}",
                               "{\"b\": \"x\", \"d\": 1}", "{\"a\": 1.5, \"b\": \"x\"}", NULL};
    static const char *y2[] = {"{\"next\": {\"next\": {}}}", "{}", NULL};
    static const char *y3[] = {"\"Ab-12\"", "\"Zzzzz-999\"", NULL};
    static const char *n3[] = {"\"ab-12\"", "\"Ab-1\"", "\"Ab-1234\"", "\"Abcdef-12\"", NULL};
    static const char *y4[] = {"\"xx\\\"ab\\\\yy\"", "\"ab\"", NULL}; /* unanchored, with escapes around */
    static const char *n4[] = {"\"a\"", "\"ba\"", NULL};
    static const char *y5[] = {"\"2024-02-28T23:59:59.5+05:30\"", "\"1999-12-31T00:00:00Z\"", NULL};
    static const char *n5[] = {"\"2024-02-30T00:00:00Z\"", "\"2024-13-01T00:00:00Z\"", "\"2024-01-01T24:00:00Z\"",
                               "\"2024-01-01 00:00:00Z\"", "\"2024-01-01T00:00:00\"", NULL};
    static const char *y6[] = {"{\"k\": 1, \"j\": -3}", "{}", NULL};
    static const char *y7[] = {"[]", "[[], [[]]]", "null", "[null, [null]]", NULL};
    static const char *n7[] = {"[1]", "[[]", NULL};
    static const char *n6[] = {"{\"k\": \"x\"}", NULL};
    schema_expect("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\", "
                  "\"maxLength\": 3}, \"c\": {\"type\": \"boolean\"}}, \"required\": [\"b\"], \"additionalProperties\": false}",
                  y1, n1);
    schema_expect("{\"$defs\": {\"node\": {\"type\": \"object\", \"properties\": {\"next\": {\"$ref\": \"#/$defs/node\"}}}},"
                  " \"$ref\": \"#/$defs/node\"}",
                  y2, NULL);
    schema_expect("{\"type\": \"string\", \"pattern\": \"^[A-Z][a-z]{0,4}-\\\\d{2,3}$\"}", y3, n3);
    schema_expect("{\"type\": \"string\", \"pattern\": \"ab\"}", y4, n4);
    schema_expect("{\"type\": \"string\", \"format\": \"date-time\"}", y5, n5);
    schema_expect("{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}", y6, n6);
    /* recursion inside "[" is fine, also through anyOf */
    schema_expect("{\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"array\", \"items\": {\"$ref\": \"#\"}}]}", y7, n7);
}

/* ---------- tokens: the LLaMA 3 vocabulary ---------- */

static bn_tokenizer *llama3;
static bn_grammar_vocab *llama3_vocab;
static const int32_t LLAMA3_EOS = 128009; /* <|eot_id|> */

/* bn_tokenizer_token_bytes against decoding: a byte-level token's text is its bytes. */
static void test_token_bytes(void) {
    static const char *words[] = {"Hello", " world", "\xc3\xa9t\xc3\xa9", "{\"", " \xf0\x9f\x98\x80", "\n\n"};
    char buf[64];
    int i, n;
    for (i = 0; i < 6; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0, k, at = 0;
        char joined[64];
        BNT_CHECK(bn_tokenizer_encode(llama3, words[i], strlen(words[i]), 0, &ids, &n_ids, NULL) == BN_OK);
        for (k = 0; k < n_ids; k++) {
            n = bn_tokenizer_token_bytes(llama3, ids[k], buf, sizeof buf);
            BNT_CHECK(n > 0 && at + (size_t)n < sizeof joined);
            if (n > 0 && at + (size_t)n < sizeof joined) memcpy(joined + at, buf, (size_t)n), at += (size_t)n;
        }
        BNT_CHECKF(at == strlen(words[i]) && !memcmp(joined, words[i], at), "'%s'", words[i]);
        bn_free(ids);
    }
    BNT_CHECK(bn_tokenizer_token_bytes(llama3, -1, buf, sizeof buf) == -1);
    BNT_CHECK(bn_tokenizer_token_bytes(llama3, 1 << 20, buf, sizeof buf) == -1);
    /* a token whose bytes are half a character: Ã© is "\xc3\xa9"; one byte-level byte token alone */
    n = bn_tokenizer_token_bytes(llama3, bn_tokenizer_token_to_id(llama3, "\xc3\x83", 2), buf, sizeof buf);
    BNT_CHECK(n == 1 && (unsigned char)buf[0] == 0xc3);
}

/* SentencePiece: "▁" is a space and <0x0A> the byte 0x0A, also for the first token. */
static void test_token_bytes_spm(void) {
    bn_tokenizer *t = NULL;
    char buf[16];
    int32_t id;
    if (bn_tokenizer_load(&t, BNT_FIXTURES "/tokenizers/spm32k", NULL) != BN_OK) {
        BNT_CHECK(0);
        return;
    }
    id = bn_tokenizer_token_to_id(t, "\xe2\x96\x81the", 6);
    BNT_CHECK(id >= 0 && bn_tokenizer_token_bytes(t, id, buf, sizeof buf) == 4 && !memcmp(buf, " the", 4));
    id = bn_tokenizer_token_to_id(t, "<0x0A>", 6);
    BNT_CHECK(id >= 0 && bn_tokenizer_token_bytes(t, id, buf, sizeof buf) == 1 && buf[0] == '\n');
    bn_tokenizer_free(t);
}

/* The trie walk's mask equals checking every token's bytes one by one (a fresh matcher each). */
static void mask_vs_brute_force(const bn_grammar *g, const char *prefix) {
    bn_grammar_matcher *m = NULL, *m2 = NULL;
    int n_vocab = bn_tokenizer_vocab_size(llama3), t, count, brute = 0, diff = 0;
    uint32_t *mask = (uint32_t *)calloc((size_t)n_vocab / 32 + 1, 4);
    char buf[300];
    BNT_CHECK(bn_grammar_matcher_new(&m, g, NULL) == BN_OK && bn_grammar_matcher_new(&m2, g, NULL) == BN_OK && mask);
    if (!m || !m2 || !mask) return;
    BNT_CHECK(bn_grammar_matcher_accept_bytes(m, prefix, strlen(prefix)));
    BNT_CHECK(bn_grammar_matcher_accept_bytes(m2, prefix, strlen(prefix)));
    count = bn_grammar_matcher_mask(m, llama3_vocab, mask, n_vocab);
    for (t = 0; t < n_vocab; t++) {
        int n = bn_tokenizer_token_bytes(llama3, t, buf, sizeof buf), ok;
        if (t == LLAMA3_EOS) ok = bn_grammar_matcher_can_end(m);
        else if (n <= 0 || bn_tokenizer_is_special(llama3, t)) ok = 0;
        else { /* the byte-by-byte path from the same state, restored after */
            int32_t at = m2->cur;
            ok = bn_grammar_matcher_accept_bytes(m2, buf, (size_t)n);
            m2->cur = at;
        }
        brute += ok;
        if (ok != (int)((mask[t >> 5] >> (t & 31)) & 1) && diff++ < 3) printf("  token %d: brute %d, mask %d\n", t, ok, !ok);
        if (ok != bn_grammar_matcher_allows(m, llama3_vocab, t) && diff++ < 3) printf("  token %d: allows disagrees\n", t);
    }
    BNT_CHECKF(diff == 0 && count == brute, "after '%s': %d tokens differ, mask %d, brute %d", prefix, diff, count, brute);
    bn_grammar_matcher_free(m);
    bn_grammar_matcher_free(m2);
    free(mask);
}

static void test_mask_llama3(void) {
    bn_grammar *json = compile(JSON_GBNF), *arith = compile(ARITH), *uni = compile("root ::= [\xce\xb1-\xcf\x89 ]+ \".\"");
    BNT_CHECK(json && arith && uni);
    if (!json || !arith || !uni) return;
    mask_vs_brute_force(json, "");
    mask_vs_brute_force(json, "{\"key\": \"va");
    mask_vs_brute_force(json, "{\"a\": [1, 2");
    mask_vs_brute_force(json, "{\"a\": \"\xe2\x82"); /* inside a character */
    mask_vs_brute_force(arith, "(12+");
    mask_vs_brute_force(uni, "\xce\xb1");
    bn_grammar_free(json);
    bn_grammar_free(arith);
    bn_grammar_free(uni);
}

/* ---------- the sampler ---------- */

static void test_sampler_rules(void) {
    int n_vocab = bn_tokenizer_vocab_size(llama3), i, step;
    float *logits = (float *)malloc(sizeof(float) * (size_t)n_vocab);
    uint64_t rng = 7;
    bn_sampler_params sp = bn_sampler_default_params();
    bn_sampler *s = NULL, *bad = NULL;
    bn_error err;
    sp.grammar = COMMANDS;
    sp.grammar_vocab = llama3_vocab;
    /* greedy: the most likely token the grammar allows, step after step, then the end token */
    sp.temperature = 0.0f;
    BNT_CHECK(bn_sampler_new(&s, &sp, n_vocab, &err) == BN_OK);
    for (step = 0; s && step < 12; step++) {
        int32_t tok, best = -1;
        for (i = 0; i < n_vocab; i++) logits[i] = (float)bn_rng_uniform(&rng);
        tok = bn_sampler_sample(s, logits);
        for (i = 0; i < n_vocab; i++) /* the reference: every token checked alone */
            if ((best < 0 || logits[i] > logits[best]) && bn_grammar_matcher_allows(s->gm, llama3_vocab, i)) best = i;
        BNT_CHECKF(tok == best, "step %d: %d, best allowed %d", step, tok, best);
        if (tok == LLAMA3_EOS || tok < 0) break;
        BNT_CHECK(bn_sampler_accept(s, tok) == 1);
    }
    BNT_CHECK(step < 12); /* a command is a few tokens, then only the end token is left */
    BNT_CHECK(bn_sampler_accept(s, bn_tokenizer_token_to_id(llama3, "x", 1)) == 0); /* not allowed: refused */
    bn_sampler_reset(s);
    BNT_CHECK(bn_grammar_matcher_can_continue(s->gm) && !bn_grammar_matcher_can_end(s->gm));
    bn_sampler_free(s);
    s = NULL;
    /* no end token and a complete grammar: nothing to sample */
    {
        bn_grammar_vocab *no_eos = NULL;
        BNT_CHECK(bn_grammar_vocab_new(&no_eos, llama3, &LLAMA3_EOS, 0, NULL) == BN_OK);
        sp.grammar_vocab = no_eos;
        sp.grammar = "root ::= \"quit\"";
        BNT_CHECK(bn_sampler_new(&s, &sp, n_vocab, NULL) == BN_OK);
        BNT_CHECK(s && bn_sampler_accept(s, bn_tokenizer_token_to_id(llama3, "quit", 4)) == 1);
        BNT_CHECK(s && bn_sampler_sample(s, logits) == -1);
        bn_sampler_free(s);
        bn_grammar_vocab_free(no_eos);
    }
    /* sampling with temperature only ever draws allowed tokens */
    sp.grammar_vocab = llama3_vocab;
    sp.grammar = JSON_GBNF;
    sp.temperature = 1.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    BNT_CHECK(bn_sampler_new(&s, &sp, n_vocab, NULL) == BN_OK);
    for (step = 0; s && step < 30; step++) {
        int32_t tok;
        for (i = 0; i < n_vocab; i++) logits[i] = 3.0f * (float)bn_rng_uniform(&rng);
        tok = bn_sampler_sample(s, logits);
        BNT_CHECK(tok >= 0 && bn_grammar_matcher_allows(s->gm, llama3_vocab, tok));
        if (tok == LLAMA3_EOS || tok < 0 || !bn_sampler_accept(s, tok)) break;
    }
    bn_sampler_free(s);
    /* bad parameters */
    sp.grammar = "root ::= (";
    BNT_CHECK(bn_sampler_new(&bad, &sp, n_vocab, &err) == BN_ERR_FORMAT && strstr(err.msg, "line 1, column 10"));
    sp.grammar = NULL;
    sp.json_schema = "{\"type\": \"integer\", \"maximum\": 3}";
    BNT_CHECK(bn_sampler_new(&bad, &sp, n_vocab, &err) == BN_ERR_UNSUPPORTED && strstr(err.msg, "'maximum'"));
    sp.json_schema = "{}";
    sp.grammar_vocab = NULL;
    BNT_CHECK(bn_sampler_new(&bad, &sp, n_vocab, &err) == BN_ERR_ARG && strstr(err.msg, "grammar_vocab"));
    sp.grammar = "root ::= \"a\"";
    sp.grammar_vocab = llama3_vocab;
    BNT_CHECK(bn_sampler_new(&bad, &sp, n_vocab, &err) == BN_ERR_ARG && strstr(err.msg, "not both"));
    BNT_CHECK(bad == NULL);
    free(logits);
}

/* ---------- generation, checked by tests/grammar_check.py ---------- */

typedef struct gen_case {
    const char *name;
    const char *check;   /* how grammar_check.py checks it: schema, json, arith, commands, re:REGEX */
    const char *grammar; /* GBNF, or NULL and: */
    const char *schema;  /* a JSON Schema */
    int unbounded;       /* the grammar has no longest text: a text may stop at the token limit */
} gen_case;

/* Arithmetic with the nesting bounded (so every text ends within the token limit). */
static const char *ARITH3 = "root ::= e1\n"
                            "e1 ::= t1 ((\"+\" | \"-\") t1)?\nt1 ::= f1 ((\"*\" | \"/\") f1)?\nf1 ::= [0-9]{1,3} | \"(\" e2 \")\"\n"
                            "e2 ::= t2 ((\"+\" | \"-\") t2)?\nt2 ::= f2 ((\"*\" | \"/\") f2)?\nf2 ::= [0-9]{1,3}\n";
/* JSON nested three levels deep, every part bounded (180 bytes at most). */
static const char *JSON3 =
    "root ::= o1\n"
    "o1 ::= \"{\" ( s \": \" v1 (\", \" s \": \" v1)? )? \"}\"\n"
    "v1 ::= o2 | \"[\" ( v2 (\", \" v2)? )? \"]\" | a\n"
    "o2 ::= \"{\" ( s \": \" v2 (\", \" s \": \" v2)? )? \"}\"\n"
    "v2 ::= \"[\" ( a (\", \" a)? )? \"]\" | a\n"
    "a ::= s | \"-\"? [0-9]{1,4} | \"true\" | \"false\" | \"null\"\n"
    "s ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1F] | \"\\\\\" [\"\\\\nt] ){0,4} \"\\\"\"\n";

static const gen_case CASES[] = {
    {"arithmetic", "arith", NULL, NULL, 0},
    {"commands", "commands", NULL, NULL, 0},
    {"nested-json", "json", NULL, NULL, 0},
    {"unicode-classes", "re:[\xce\xb1-\xcf\x89]{1,6}( [\xce\x91-\xce\xa9\xe2\x82\xac]{1,3}){0,2}[.!]", NULL, NULL, 0},
    {"repetition-bounds", "re:a{3}b{2,4}c{0,2}d{1,3}(xy){2}", NULL, NULL, 0},
    {"schema-types", "schema", NULL,
     "{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 6}, \"n\": {\"type\": \"number\"}, "
     "\"i\": {\"type\": \"integer\"}, \"b\": {\"type\": \"boolean\"}, \"z\": {\"type\": \"null\"}, \"u\": {\"type\": [\"integer\", "
     "\"null\"]}}, \"required\": [\"s\", \"n\", \"i\", \"b\", \"z\", \"u\"], \"additionalProperties\": false}", 0},
    {"schema-required", "schema", NULL,
     "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\", \"maxLength\": 3}, "
     "\"c\": {\"type\": \"boolean\"}}, \"required\": [\"b\"]}", 0},
    {"schema-items", "schema", NULL, "{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 2, \"maxItems\": 4}", 0},
    {"schema-enum-const", "schema", NULL,
     "{\"type\": \"object\", \"properties\": {\"color\": {\"enum\": [\"red\", \"green\", \"blue\", null, 3]}, \"v\": {\"const\": "
     "\"x\\\"y\"}, \"w\": {\"const\": [1, {\"k\": false}]}}, \"required\": [\"color\", \"v\", \"w\"]}", 0},
    {"schema-oneof", "schema", NULL,
     "{\"oneOf\": [{\"type\": \"integer\"}, {\"type\": \"array\", \"items\": {\"type\": \"boolean\"}, \"maxItems\": 2}, "
     "{\"type\": \"object\", \"properties\": {\"k\": {\"type\": \"null\"}}, \"required\": [\"k\"]}]}", 0},
    {"schema-anyof", "schema", NULL, "{\"anyOf\": [{\"type\": \"string\", \"maxLength\": 4}, {\"type\": \"null\"}]}", 0},
    {"schema-ref", "schema", NULL,
     "{\"$defs\": {\"pt\": {\"type\": \"object\", \"properties\": {\"x\": {\"type\": \"integer\"}, \"y\": {\"type\": \"integer\"}}, "
     "\"required\": [\"x\", \"y\"]}}, \"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/pt\"}, \"maxItems\": 2}", 0},
    {"schema-lengths", "schema", NULL, "{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 5}", 0},
    {"schema-pattern", "schema", NULL, "{\"type\": \"string\", \"pattern\": \"^[A-Z][a-z]{1,4}-\\\\d{2,3}( [xy\\\"]{1,2})?$\"}", 0},
    {"schema-date-time", "schema", NULL,
     "{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\", \"format\": \"date\"}, \"t\": {\"format\": \"time\"}}, "
     "\"required\": [\"d\", \"t\"]}", 0},
    {"schema-datetime-uuid", "schema", NULL,
     "{\"type\": \"array\", \"items\": {\"anyOf\": [{\"type\": \"string\", \"format\": \"date-time\"}, {\"format\": \"uuid\"}]}, "
     "\"minItems\": 1, \"maxItems\": 2}", 0},
    {"schema-map", "schema", NULL, "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"integer\"}}", 1},
    {"json-object", "schema", NULL, "{\"type\": \"object\"}", 1},
};
#define N_CASES ((int)(sizeof CASES / sizeof *CASES))

static const char *case_grammar(const gen_case *c) {
    if (c->grammar) return c->grammar;
    if (!strcmp(c->name, "arithmetic")) return ARITH3;
    if (!strcmp(c->name, "commands")) return COMMANDS;
    if (!strcmp(c->name, "nested-json")) return JSON3;
    if (!strcmp(c->name, "unicode-classes"))
        return "root ::= [\xce\xb1-\xcf\x89]{1,6} (\" \" [\xce\x91-\xce\xa9\\u20AC]{1,3}){0,2} [.!]";
    if (!strcmp(c->name, "repetition-bounds")) return "root ::= \"a\"{3} \"b\"{2,4} \"c\"{,2} \"d\"{1,3} (\"x\" \"y\"){2}";
    return NULL;
}

/* A JSON string of bytes s[0..n) (valid UTF-8: control characters and quotes escaped). */
static void put_json_string(FILE *f, const char *s, size_t n) {
    size_t i;
    fputc('"', f);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Under AddressSanitizer (several times slower) the generation runs fewer seeds. */
#if defined(__SANITIZE_ADDRESS__)
#define BNT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BNT_ASAN 1
#endif
#endif
#ifndef BNT_ASAN
#define BNT_ASAN 0
#endif

/* The longest prefix of s[0..n) that does not end inside a UTF-8 character. */
static size_t utf8_complete_prefix(const char *s, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i > 0) {
        unsigned char lead = (unsigned char)s[i - 1];
        size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (need > back + 1) return i - 1;
    }
    return n;
}

/* Generate under every case, greedy and at temperatures temps[1..n_temps) with
   n_seeds seeds each; one JSON line per text. */
static int generate_all(FILE *out, const char *label, bn_model *model, bn_tokenizer *tok, const bn_grammar_vocab *vocab,
                        int n_temps, int n_seeds, int max_tokens, int prompt_token) {
    static const float temps[] = {0.0f, 1.0f, 0.7f, 1.5f};
    bn_context *ctx = NULL;
    bn_context_params cp = bn_context_default_params();
    int c, ti, seed, texts = 0;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)max_tokens);
    cp.n_ctx = max_tokens + 8;
    cp.n_threads = 1;
    BNT_CHECK(bn_context_new(&ctx, model, &cp, NULL) == BN_OK);
    for (c = 0; ctx && c < N_CASES; c++)
        for (ti = 0; ti < n_temps; ti++)
            for (seed = 1; seed <= (ti == 0 ? 1 : n_seeds); seed++) { /* greedy once */
                bn_sampler_params sp = bn_sampler_default_params();
                bn_generate_params gp = bn_generate_default_params();
                bn_generate_result res;
                bn_sampler *s = NULL;
                bn_error err;
                char *text = NULL;
                size_t len = 0;
                int n;
                sp.temperature = temps[ti];
                sp.seed = (uint64_t)seed * 1000 + (uint64_t)c;
                sp.grammar = case_grammar(&CASES[c]);
                sp.json_schema = CASES[c].schema;
                sp.grammar_vocab = vocab;
                if (bn_sampler_new(&s, &sp, bn_model_config(model)->vocab_size, &err) != BN_OK) {
                    BNT_CHECKF(0, "%s: %s", CASES[c].name, err.msg);
                    continue;
                }
                gp.max_new_tokens = max_tokens;
                bn_context_reset(ctx);
                BNT_CHECK(bn_generate(ctx, 0, s, &prompt_token, 1, &gp, ids, max_tokens, &res, &err) == BN_OK);
                n = res.n_generated;
                if (res.reason == BN_STOP_EOS) n--; /* the end token is not text */
                BNT_CHECK(bn_tokenizer_decode(tok, ids, (size_t)(n > 0 ? n : 0), 0, &text, &len, NULL) == BN_OK);
                len = utf8_complete_prefix(text, len); /* a text cut at the limit may end inside a character */
                fprintf(out, "{\"run\": \"%s t=%.1f seed=%d\", \"case\": ", label, (double)temps[ti], seed);
                put_json_string(out, CASES[c].name, strlen(CASES[c].name));
                fprintf(out, ", \"check\": ");
                put_json_string(out, CASES[c].check, strlen(CASES[c].check));
                fprintf(out, ", \"schema\": %s, \"unbounded\": %s, \"reason\": \"%s\", \"text\": ", CASES[c].schema ? CASES[c].schema : "null",
                        CASES[c].unbounded ? "true" : "false", bn_stop_reason_name(res.reason));
                put_json_string(out, text ? text : "", len);
                fprintf(out, "}\n");
                bn_free(text);
                bn_sampler_free(s);
                texts++;
            }
    bn_context_free(ctx);
    free(ids);
    return texts;
}

/* A random model with the LLaMA 3 vocabulary (128256 tokens, hidden size 32, one layer), saved here. */
static bn_model *random_llama3_model(void) {
    bn_config tc = bn_train_default_config();
    bn_train_model *tm = NULL;
    bn_model *m = NULL;
    bn_error err;
    tc.vocab_size = 128256;
    tc.hidden_size = 32;
    tc.intermediate_size = 64;
    tc.n_layers = 1;
    tc.n_heads = 2;
    tc.n_kv_heads = 1;
    tc.max_seq_len = 512;
    tc.bos_token_id = 128000;
    tc.n_eos = 1;
    tc.eos_token_ids[0] = LLAMA3_EOS;
    mkdir("build", 0755);
    mkdir(TMP, 0755);
    mkdir(TMP "/grammar-llama3-random", 0755);
    if (bn_train_model_new(&tm, &tc, 3, &err) || bn_train_save_hf(tm, TMP "/grammar-llama3-random", &err) ||
        bn_model_load(&m, TMP "/grammar-llama3-random", NULL, &err))
        printf("  random model: %s\n", err.msg);
    bn_train_model_free(tm);
    return m;
}

static void test_generation(void) {
    const char *path = TMP "/grammar-generated.jsonl";
    bn_model *shakespeare = NULL, *rnd = NULL;
    bn_tokenizer *stok = NULL;
    bn_grammar_vocab *svocab = NULL;
    FILE *out;
    int texts = 0, rc;
    double t0;
    mkdir("build", 0755);
    mkdir(TMP, 0755);
    out = fopen(path, "w");
    BNT_CHECK(out != NULL);
    if (!out) return;
    BNT_CHECK(bn_model_load(&shakespeare, "models/shakespeare", NULL, NULL) == BN_OK);
    BNT_CHECK(bn_tokenizer_load(&stok, "models/shakespeare", NULL) == BN_OK);
    t0 = bn_time_s();
    if (shakespeare && stok) {
        const bn_config *cfg = bn_model_config(shakespeare);
        BNT_CHECK(bn_grammar_vocab_new(&svocab, stok, cfg->eos_token_ids, cfg->n_eos, NULL) == BN_OK);
        texts += generate_all(out, "shakespeare", shakespeare, stok, svocab, 4, BNT_ASAN ? 1 : 4, 240, cfg->bos_token_id);
    }
    printf("  shakespeare %.1f s\n", bn_time_s() - t0);
    t0 = bn_time_s();
    rnd = random_llama3_model();
    BNT_CHECK(rnd != NULL);
    if (rnd) texts += generate_all(out, "llama3-random", rnd, llama3, llama3_vocab, 2, BNT_ASAN ? 1 : 2, 300, 128000);
    fclose(out);
    printf("  llama3 %.1f s\n", bn_time_s() - t0);
    printf("  %d texts generated\n", texts);
    rc = system("python3 tests/grammar_check.py " TMP "/grammar-generated.jsonl");
    BNT_CHECKF(rc == 0, "tests/grammar_check.py found invalid texts (exit status %d)", rc);
    bn_grammar_vocab_free(svocab);
    bn_tokenizer_free(stok);
    bn_model_free(shakespeare);
    bn_model_free(rnd);
}

int main(void) {
    bn_error err;
    BNT_RUN(test_arithmetic);
    BNT_RUN(test_commands);
    BNT_RUN(test_nested_json);
    BNT_RUN(test_unicode_classes);
    BNT_RUN(test_repetition_bounds);
    BNT_RUN(test_ambiguity_bound);
    BNT_RUN(test_syntax_details);
    BNT_RUN(test_cache_flush);
    BNT_RUN(test_bad_grammars);
    BNT_RUN(test_schema_unsupported);
    BNT_RUN(test_schema_grammars);
    if (bn_tokenizer_load(&llama3, LLAMA3, &err) != BN_OK ||
        bn_grammar_vocab_new(&llama3_vocab, llama3, &LLAMA3_EOS, 1, &err) != BN_OK) {
        printf("llama3 tokenizer: %s\n", err.msg);
        return 1;
    }
    BNT_RUN(test_token_bytes);
    BNT_RUN(test_token_bytes_spm);
    BNT_RUN(test_mask_llama3);
    BNT_RUN(test_sampler_rules);
    BNT_RUN(test_generation);
    bn_grammar_vocab_free(llama3_vocab);
    bn_tokenizer_free(llama3);
    return bnt_finish("test_grammar");
}
