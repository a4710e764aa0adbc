/* A tiny test harness shared by the test programs (not part of the library).
   Each test is a function; it passes when none of its checks failed.
   A program ends with bnt_finish("suite"), which prints
   "suite: N passed, M failed" and returns the exit status. */
#ifndef BN_TEST_HARNESS_H
#define BN_TEST_HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int bnt_failed_checks, bnt_passed, bnt_failed;
static const char *bnt_current = "";

#define BNT_CHECK(cond)                                                                       \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            bnt_failed_checks++;                                                              \
            printf("  check failed %s:%d in %s: %s\n", __FILE__, __LINE__, bnt_current, #cond); \
        }                                                                                     \
    } while (0)

/* BNT_CHECKF(cond, "fmt", args...) prints the formatted detail on failure. */
#define BNT_CHECKF(cond, ...)                                                          \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            bnt_failed_checks++;                                                       \
            printf("  check failed %s:%d in %s: %s: ", __FILE__, __LINE__, bnt_current, #cond); \
            printf(__VA_ARGS__);                                                       \
            printf("\n");                                                              \
        }                                                                              \
    } while (0)

#define BNT_RUN(fn)                                   \
    do {                                              \
        int bnt_before_ = bnt_failed_checks;          \
        bnt_current = #fn;                            \
        fn();                                         \
        if (bnt_failed_checks == bnt_before_) {       \
            bnt_passed++;                             \
            printf("ok   %s\n", #fn);                 \
        } else {                                      \
            bnt_failed++;                             \
            printf("FAIL %s\n", #fn);                 \
        }                                             \
        fflush(stdout);                               \
    } while (0)

static int bnt_finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, bnt_passed, bnt_failed);
    return bnt_failed ? 1 : 0;
}

/* ||a - b|| / ||b|| over n floats (||a - b|| when b is all zeros) */
static inline double bnt_rel_l2(const float *a, const float *b, size_t n) {
    double num = 0.0, den = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

/* The index of the largest of n floats (the first, on a tie) */
static inline int bnt_argmax(const float *x, int n) {
    int i, best = 0;
    for (i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Fixtures are read relative to the repository root, where make runs the tests. */
#ifndef BNT_FIXTURES
#define BNT_FIXTURES "tests/fixtures"
#endif

#endif
