/* progress.c: see progress.h. */
#include "../bitnet.h"
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <io.h>
#define stderr_tty() _isatty(2)
#else
#include <unistd.h>
#define stderr_tty() isatty(2)
#endif

static int env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "FALSE") != 0;
}

const char *progress_bytes(long long n, char *buf, int cap) {
    if (n < 1024) snprintf(buf, (size_t)cap, "%lld B", n);
    else if (n < 1024 * 1024) snprintf(buf, (size_t)cap, "%.1f KiB", (double)n / 1024.0);
    else if (n < 1024LL * 1024 * 1024) snprintf(buf, (size_t)cap, "%.1f MiB", (double)n / 1048576.0);
    else snprintf(buf, (size_t)cap, "%.2f GiB", (double)n / 1073741824.0);
    return buf;
}

void progress_begin(progress *p, const char *label, long long total, long long start) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->done = start;
    p->t_start = p->t_drawn = bn_time_s();
    p->tty = stderr_tty();
    p->quiet = env_on("HF_HUB_DISABLE_PROGRESS_BARS") || env_on("BITNET_NO_PROGRESS");
    if (!p->tty && total < (16 << 20)) p->quiet = 1; /* logs: only large jobs are worth lines */
    if (total > 0 && start > 0) p->quarters_shown = (int)(4 * start / total);
}

static void draw_tty(progress *p, double now) {
    char a[32], b[32], r[32], bar[31];
    double rate = now > p->t_start ? (double)p->done / (now - p->t_start) : 0.0;
    int i, fill = p->total > 0 ? (int)(30.0 * (double)p->done / (double)p->total) : 0;
    for (i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    progress_bytes(p->done, a, sizeof a);
    progress_bytes((long long)rate, r, sizeof r);
    if (p->total > 0) {
        long long left = p->total - p->done;
        double eta = rate > 0 ? (double)left / rate : 0.0;
        fprintf(stderr, "\r%-28.28s [%s] %s / %s  %s/s  ETA %02d:%02d \033[K", p->label, bar, a,
                progress_bytes(p->total, b, sizeof b), r, (int)(eta / 60) % 100, (int)eta % 60);
    } else {
        fprintf(stderr, "\r%-28.28s %s  %s/s\033[K", p->label, a, r);
    }
    fflush(stderr);
    p->drawn = 1;
}

void progress_update(progress *p, long long done) {
    double now;
    p->done = done;
    if (p->quiet) return;
    now = bn_time_s();
    if (p->tty) {
        if (now - p->t_drawn >= 0.1) {
            draw_tty(p, now);
            p->t_drawn = now;
        }
    } else if (p->total > 0) {
        int q = (int)(4 * done / p->total);
        if (q > p->quarters_shown && q < 4) {
            char a[32], b[32];
            p->quarters_shown = q;
            fprintf(stderr, "%s: %d%% (%s of %s)\n", p->label, 25 * q, progress_bytes(done, a, sizeof a),
                    progress_bytes(p->total, b, sizeof b));
        }
    }
}

void progress_end(progress *p, int ok) {
    double now = bn_time_s(), dt = now - p->t_start;
    char a[32], r[32];
    if (p->quiet) return;
    if (p->tty) {
        if (!ok) {
            if (p->drawn) fprintf(stderr, "\r\033[K");
            fflush(stderr);
            return;
        }
        draw_tty(p, now);
        fprintf(stderr, "\n");
        return;
    }
    if (ok)
        fprintf(stderr, "%s: done, %s in %.1f s (%s/s)\n", p->label, progress_bytes(p->done, a, sizeof a), dt,
                progress_bytes(dt > 0 ? (long long)((double)p->done / dt) : p->done, r, sizeof r));
}

/* Large weights are read from the disk once with a bar, so that the load that follows (which
   maps them) finds them in the page cache: the wait shows as progress instead of silence. */
void progress_preload(const char *model_dir) {
    static char buf[1 << 20];
    bn_safetensors *st = NULL;
    progress bar;
    long long total = 0, done = 0;
    int i;
    if (!stderr_tty() || env_on("HF_HUB_DISABLE_PROGRESS_BARS") || env_on("BITNET_NO_PROGRESS")) return;
    if (bn_safetensors_load(&st, model_dir, NULL) != BN_OK) return; /* the load will say what is wrong */
    for (i = 0; i < st->n_files; i++) total += (long long)st->files[i].size;
    if (total >= (256LL << 20)) {
        progress_begin(&bar, "reading weights", total, 0);
        for (i = 0; i < st->n_files; i++) {
            FILE *f = fopen(st->files[i].path, "rb");
            size_t got;
            while (f && (got = fread(buf, 1, sizeof buf, f)) > 0) progress_update(&bar, done += (long long)got);
            if (f) fclose(f);
        }
        progress_end(&bar, 1);
    }
    bn_safetensors_free(st);
}
