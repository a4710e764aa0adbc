/* progress.h: progress of long jobs (downloads, hashing, conversion, loading) on stderr.

   On a terminal one line redrawn in place: label, bar, bytes done of total, rate, ETA.
   Otherwise (a log, a pipe) plain lines, one at every further quarter and one at the end,
   so logs stay short. HF_HUB_DISABLE_PROGRESS_BARS=1 (as huggingface_hub reads it) or
   BITNET_NO_PROGRESS=1 turn both off. */
#ifndef BITNET_PROGRESS_H
#define BITNET_PROGRESS_H

typedef struct progress {
    char label[96];
    long long total; /* bytes; <= 0 when unknown */
    long long done;
    double t_start, t_drawn;
    int tty, quiet, quarters_shown, drawn;
} progress;

/* Starts a bar for total bytes (<= 0: unknown). start is where a resumed job begins. */
void progress_begin(progress *p, const char *label, long long total, long long start);
void progress_update(progress *p, long long done);
/* Draws the final state (ok != 0) or clears the line; ends the bar. */
void progress_end(progress *p, int ok);
/* On a terminal, reads a model folder's weight files once with a bar when they are large
   (256 MiB or more), so that loading them is seen to progress. */
void progress_preload(const char *model_dir);
/* "12.3 MiB" into buf. */
const char *progress_bytes(long long n, char *buf, int cap);

#endif
