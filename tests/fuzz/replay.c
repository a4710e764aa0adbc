/* Replays fuzz inputs through one harness without libFuzzer: `make test` links
   each tests/fuzz/fuzz_<name>.c with this main() (and AddressSanitizer +
   UndefinedBehaviorSanitizer), then runs it over the committed corpus and
   past crash inputs of that harness. Arguments are files or folders (every
   file inside, sorted, no recursion); a folder that does not exist counts as
   empty. A sanitizer report or a hang (BN_REPLAY_TIMEOUT seconds, default 30,
   per input) fails the run and names the input. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Provided by the sanitizer runtimes; called before a report ends the process. */
void __sanitizer_set_death_callback(void (*callback)(void));

static const char *current = "";
static char suite[256] = "fuzz-replay";

static void on_death(void) { fprintf(stderr, "%s: FAILED on input %s\n", suite, current); }

static void on_alarm(int sig) {
    (void)sig;
    /* only async-signal-safe calls here */
    static const char msg[] = "fuzz-replay: an input ran past the time limit: ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, current, strlen(current)) < 0 || write(2, "\n", 1) < 0) _exit(1);
    _exit(1);
}

static int run_file(const char *path, unsigned timeout) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f) { fprintf(stderr, "%s: cannot open %s\n", suite, path); return 0; }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) { fclose(f); return 0; }
    /* an exact-size buffer, so that ASan sees a read one byte past the input */
    buf = (uint8_t *)malloc(n ? (size_t)n : 1);
    if (!buf || (n && fread(buf, 1, (size_t)n, f) != (size_t)n)) { fclose(f); free(buf); return 0; }
    fclose(f);
    current = path;
    alarm(timeout);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    alarm(0);
    free(buf);
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every regular file of a folder, in name order; returns the number replayed, -1 on a failure to read. */
static int run_dir(const char *dir, unsigned timeout) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    int done = 0;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            char **nn = (char **)realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
            if (!nn) { closedir(d); return -1; }
            names = nn;
        }
        names[n] = (char *)malloc(strlen(dir) + strlen(e->d_name) + 2);
        if (!names[n]) { closedir(d); return -1; }
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (i = 0; i < n; i++) {
        struct stat sb;
        if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (!run_file(names[i], timeout)) done = -1;
            else if (done >= 0) done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv) {
    const char *name = strrchr(argv[0], '/'), *t = getenv("BN_REPLAY_TIMEOUT");
    unsigned timeout = t && atoi(t) > 0 ? (unsigned)atoi(t) : 30;
    int i, total = 0, failed = 0;
    snprintf(suite, sizeof suite, "%s", name ? name + 1 : argv[0]);
    __sanitizer_set_death_callback(on_death);
    signal(SIGALRM, on_alarm);
    for (i = 1; i < argc; i++) {
        struct stat sb;
        int n;
        if (stat(argv[i], &sb) != 0) continue; /* no crash inputs yet */
        n = S_ISDIR(sb.st_mode) ? run_dir(argv[i], timeout) : run_file(argv[i], timeout) ? 1 : -1;
        if (n < 0) failed++;
        else total += n;
    }
    printf("%s: %d passed, %d failed\n", suite, total, failed);
    return failed ? 1 : 0;
}
