#ifndef BN_PART_THREADS_H
#define BN_PART_THREADS_H
#include "base.h"
/* A persistent thread pool: threads are created once and woken for each
   parallel region, never spawned per operation.

   bn_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for each ith in
   [0, nth), concurrently on the pool's nth threads (the calling thread is
   one of them and runs ith = 0; it also runs the part of a worker that has
   not started yet when its own is done), and returns when all calls are
   done. A NULL pool runs fn(arg, 0, 1) on the caller: every parallel
   function in this library also works single-threaded.

   One pool serves one caller at a time (a context owns its pool); fn must not
   call bn_pool_run on the same pool. Workers wait for work by spinning
   briefly (a decode step runs about 150 short parallel regions, and a
   sleeping thread takes tens of microseconds to wake) and then sleep on a
   condition variable, so an idle pool costs no CPU.

   pthreads on POSIX, Win32 threads on Windows; BITNET_NO_THREADS builds a
   pool of one thread (the caller). The bn_pool and bn_pool_stats types are
   with the basics (contexts name them). */

typedef void (*bn_pool_fn)(void *arg, int ith, int nth);

BN_EXTERN_C_BEGIN
/* n_threads <= 0 means one per available core. NULL when out of memory or
   when no thread could be created. */
BN_API bn_pool *bn_pool_new(int n_threads);
BN_API void bn_pool_free(bn_pool *pool);
BN_API int bn_pool_size(const bn_pool *pool); /* 1 for NULL */
BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg);
/* Later regions add their times to *stats (which the caller zeroes); NULL
   stops. Timing costs two clock reads per part: leave it off otherwise. */
BN_API void bn_pool_profile(bn_pool *pool, bn_pool_stats *stats);
/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
BN_API void bn_split_range(int n, int ith, int nth, int *lo, int *hi);
/* Online CPU cores (1 when unknown or BITNET_NO_THREADS). */
BN_API int bn_cpu_count(void);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

BN_API void bn_split_range(int n, int ith, int nth, int *lo, int *hi) {
    int base = n / nth, rem = n % nth;
    *lo = ith * base + BN_MIN(ith, rem);
    *hi = *lo + base + (ith < rem ? 1 : 0);
}

#define BN__POOL_MAX_THREADS 256
#if defined(__GNUC__) || defined(__clang__)
#define BN__PREFETCH_L2(p) __builtin_prefetch((p), 0, 2)
#else
#define BN__PREFETCH_L2(p) ((void)(p))
#endif
/* Polls of the shared counters before a waiting thread goes to sleep. */
#define BN__POOL_SPIN 20000


/* A monotonic clock with sub-microsecond resolution where the platform has
   one (clock_gettime is POSIX, not C99: without a feature macro such as
   _DEFAULT_SOURCE, gettimeofday's microseconds). For profiles. */
#if defined(_WIN32)
static double bn__clock(void) { return bn_time_s(); }
#elif defined(CLOCK_MONOTONIC)
static double bn__clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
#else
static double bn__clock(void) { return bn_time_s(); }
#endif

/* Memory the pool's workers read next, which they prefetch while they wait.
   A decode step at many threads spends a tenth of its time in float work on
   one thread (norms, rope, the activation between the feed-forward's
   products) and in threads waiting for the slowest of a region; the memory
   sits idle then. So before a matrix product the caller names the next
   product's weights (bn__pool_ahead): `units` units of `unit_bytes` bytes
   from each span's base (the last unit may be cut short at `bytes`), split
   over the threads as the product will split
   them (bn_split_range over all the units), and each worker, once its part of
   a region is done, prefetches the start of its own share into its cache
   (at most BN__AHEAD_BYTES) until the next region comes. The hint stays until
   the caller replaces or clears it. */
#define BN__AHEAD_SPANS 4
#define BN__AHEAD_BYTES (128 * 1024)
typedef struct bn__ahead {
    int n; /* spans; 0: no hint */
    const unsigned char *base[BN__AHEAD_SPANS];
    size_t unit_bytes[BN__AHEAD_SPANS];
    size_t bytes[BN__AHEAD_SPANS];
    int units[BN__AHEAD_SPANS];
} bn__ahead;

/* One 64-byte line per thread of a pool: its part's state in the current
   region, its share of a work split (bn__split), and profile times. */
typedef struct bn__slot {
    long long state; /* (region << 1) | finished: part ith is claimed in region r once state >= r << 1 */
    long long range; /* bn__split: the unclaimed work of this thread, lo | hi << 32 */
    double t0, t1;   /* profile: when part ith of the last region started and ended */
    char pad[32];
} bn__slot;

#if defined(BITNET_NO_THREADS)

struct bn_pool {
    int n_threads;
    bn_pool_stats *stats;
};

BN_API int bn_cpu_count(void) { return 1; }

BN_API bn_pool *bn_pool_new(int n_threads) {
    bn_pool *p = BN_ZALLOC(bn_pool, 1);
    BN_UNUSED(n_threads);
    if (p) p->n_threads = 1;
    return p;
}

BN_API void bn_pool_free(bn_pool *pool) { BN_FREE(pool); }

BN_API int bn_pool_size(const bn_pool *pool) { BN_UNUSED(pool); return 1; }

BN_API void bn_pool_profile(bn_pool *pool, bn_pool_stats *stats) {
    if (pool) pool->stats = stats;
}

BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg) {
    double t0 = pool && pool->stats ? bn__clock() : 0.0;
    fn(arg, 0, 1);
    if (pool && pool->stats) {
        double dt = bn__clock() - t0;
        pool->stats->wall += dt;
        pool->stats->busy += dt;
        pool->stats->regions++;
    }
}

static bn__slot *bn__pool_slots(bn_pool *pool) { BN_UNUSED(pool); return NULL; }

static void bn__pool_ahead(bn_pool *pool, const bn__ahead *ahead) {
    BN_UNUSED(pool);
    BN_UNUSED(ahead);
}

#else /* real threads */

/* ---- the few platform primitives the pool needs ---- */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
typedef HANDLE bn__thread;
typedef CRITICAL_SECTION bn__mutex;
typedef CONDITION_VARIABLE bn__cond;
#define bn__mutex_init(m) InitializeCriticalSection(m)
#define bn__mutex_destroy(m) DeleteCriticalSection(m)
#define bn__mutex_lock(m) EnterCriticalSection(m)
#define bn__mutex_unlock(m) LeaveCriticalSection(m)
#define bn__cond_init(c) InitializeConditionVariable(c)
#define bn__cond_destroy(c) ((void)(c))
#define bn__cond_wait(c, m) SleepConditionVariableCS(c, m, INFINITE)
#define bn__cond_broadcast(c) WakeAllConditionVariable(c)
/* The Interlocked functions are full barriers: every one is sequentially consistent. */
#define bn__atomic_load(p) InterlockedCompareExchange((volatile LONG *)(p), 0, 0)
#define bn__atomic_add_sc(p, v) InterlockedExchangeAdd((volatile LONG *)(p), (LONG)(v))
#define bn__atomic_load64(p) InterlockedCompareExchange64((volatile LONGLONG *)(p), 0, 0)
#define bn__atomic_load64_sc(p) bn__atomic_load64(p)
#define bn__atomic_store64(p, v) InterlockedExchange64((volatile LONGLONG *)(p), (LONGLONG)(v))
#define bn__atomic_store64_sc(p, v) bn__atomic_store64(p, v)
#define bn__atomic_cas64(p, expected, desired) \
    (InterlockedCompareExchange64((volatile LONGLONG *)(p), (LONGLONG)(desired), (LONGLONG)(expected)) == (LONGLONG)(expected))
#define bn__cpu_relax() YieldProcessor()
#define bn__yield() SwitchToThread()
#else
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
typedef pthread_t bn__thread;
typedef pthread_mutex_t bn__mutex;
typedef pthread_cond_t bn__cond;
#define bn__mutex_init(m) pthread_mutex_init(m, NULL)
#define bn__mutex_destroy(m) pthread_mutex_destroy(m)
#define bn__mutex_lock(m) pthread_mutex_lock(m)
#define bn__mutex_unlock(m) pthread_mutex_unlock(m)
#define bn__cond_init(c) pthread_cond_init(c, NULL)
#define bn__cond_destroy(c) pthread_cond_destroy(c)
#define bn__cond_wait(c, m) pthread_cond_wait(c, m)
#define bn__cond_broadcast(c) pthread_cond_broadcast(c)
#define bn__yield() sched_yield()
#define bn__atomic_load(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define bn__atomic_add_sc(p, v) __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST)
#define bn__atomic_load64(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define bn__atomic_load64_sc(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define bn__atomic_store64(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define bn__atomic_store64_sc(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)
static int bn__atomic_cas64(long long *p, long long expected, long long desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#if defined(__x86_64__) || defined(__i386__)
#define bn__cpu_relax() __asm__ __volatile__("pause")
#elif defined(__aarch64__)
#define bn__cpu_relax() __asm__ __volatile__("yield")
#else
#define bn__cpu_relax() ((void)0)
#endif
#endif

/* A worker, and what it has left to prefetch of the pool's hint (bn__ahead):
   byte runs [lo[i], hi[i]), i from `run` on. */
typedef struct bn__worker {
    bn_pool *pool;
    int ith;
    long long ahead_gen; /* the hint these runs come from */
    int runs, run;
    const unsigned char *lo[BN__AHEAD_SPANS], *hi[BN__AHEAD_SPANS];
} bn__worker;

/* Each part ith of a region belongs to thread ith: a worker claims its own
   slot (compare-and-swap on its own cache line, so the threads never queue
   for one shared counter), and the caller, once its own part is done, claims
   and runs the parts of workers that have not started yet: on a loaded
   machine, where a worker may sit descheduled for a whole time slice, the
   caller does not wait for it. The caller then waits for each slot's
   `finished` bit, each on its own line. Sleepers are counted, so a region
   costs no system call while the workers spin. */
struct bn_pool {
    int n_threads;
    int n_started;  /* worker threads created (n_threads - 1 when all went well) */
    bn_pool_fn fn;  /* the current parallel region */
    void *arg;
    long long region; /* the current region's number; workers wait for it to change */
    long sleepers;    /* workers asleep on `wake`, or about to be */
    long caller_waits; /* the caller is asleep on `done`, or about to be */
    long stop;
    bn_pool_stats *stats;
    bn__ahead ahead;      /* the next product's weights (bn__pool_ahead) ... */
    long long ahead_gen;  /* ... counted, so that a worker keeps its place in an unchanged hint */
    bn__mutex mutex;
    bn__cond wake;  /* a region started, or stop */
    bn__cond done;  /* a part finished while the caller sleeps */
    bn__thread *threads;
    bn__worker *workers;
    bn__slot *slots; /* [n_threads], 64-byte aligned */
    void *slots_mem;
};

BN_API int bn_cpu_count(void) {
#if defined(_WIN32)
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 1;
#elif defined(_SC_NPROCESSORS_ONLN)
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)BN_MIN(n, BN__POOL_MAX_THREADS) : 1;
#else
    return 1;
#endif
}

static bn__slot *bn__pool_slots(bn_pool *pool) { return pool ? pool->slots : NULL; }

/* Replace the pool's hint (NULL or n = 0: none). Only between regions. */
static void bn__pool_ahead(bn_pool *pool, const bn__ahead *ahead) {
    if (!pool || pool->n_threads == 1) return;
    if (ahead && ahead->n > 0) {
        pool->ahead = *ahead;
        pool->ahead.n = BN_MIN(ahead->n, BN__AHEAD_SPANS);
    } else {
        pool->ahead.n = 0;
    }
    pool->ahead_gen++;
}

/* Worker w's share of the pool's hint, if the hint changed since it last
   looked: the runs of bytes it will read first. Called with a part of the
   current region claimed and not finished, so the caller, who changes the
   hint only between regions, is waiting. */
static void bn__worker_take_ahead(bn__worker *w, const bn_pool *p) {
    const bn__ahead *a = &p->ahead;
    size_t left = BN__AHEAD_BYTES;
    int total = 0, lo, hi, g, i;
    if (w->ahead_gen == p->ahead_gen) return;
    w->ahead_gen = p->ahead_gen;
    w->runs = w->run = 0;
    for (i = 0; i < a->n; i++) total += a->units[i];
    bn_split_range(total, w->ith, p->n_threads, &lo, &hi);
    for (i = 0, g = 0; i < a->n && left > 0; g += a->units[i], i++) {
        int u0 = BN_MAX(lo - g, 0), u1 = BN_MIN(hi - g, a->units[i]);
        size_t bytes;
        if (u0 >= u1 || (size_t)u0 * a->unit_bytes[i] >= a->bytes[i]) continue;
        bytes = BN_MIN(BN_MIN((size_t)u1 * a->unit_bytes[i], a->bytes[i]) - (size_t)u0 * a->unit_bytes[i], left);
        w->lo[w->runs] = a->base[i] + (size_t)u0 * a->unit_bytes[i];
        w->hi[w->runs] = w->lo[w->runs] + bytes;
        w->runs++;
        left -= bytes;
    }
}

/* Prefetch the next 1 KB of worker w's runs into its L2; 0 when none are left. */
static int bn__worker_prefetch(bn__worker *w) {
    const unsigned char *p, *end;
    while (w->run < w->runs && w->lo[w->run] >= w->hi[w->run]) w->run++;
    if (w->run >= w->runs) return 0;
    p = w->lo[w->run];
    end = BN_MIN(p + 1024, w->hi[w->run]);
    for (; p < end; p += 64) BN__PREFETCH_L2(p);
    w->lo[w->run] = end;
    return 1;
}

/* Now and then let another thread run: with more threads than free cores,
   the one we wait for may be waiting for our core. */
static void bn__spin_pause(int i) {
    if (i % 64 == 63)
        bn__yield();
    else
        bn__cpu_relax();
}

/* Claim part ith of region r and run it; 0 when another thread has it. w:
   the worker whose part it is, when it claims it itself. */
static int bn__pool_run_part(bn_pool *p, int ith, long long r, bn__worker *w) {
    bn__slot *s = &p->slots[ith];
    long long v = bn__atomic_load64(&s->state);
    if (v >= r << 1 || !bn__atomic_cas64(&s->state, v, r << 1)) return 0;
    if (w) bn__worker_take_ahead(w, p);
    /* fn and arg are region r's: r cannot end while part ith is unclaimed */
    if (p->stats) {
        s->t0 = bn__clock();
        p->fn(p->arg, ith, p->n_threads);
        s->t1 = bn__clock();
    } else {
        p->fn(p->arg, ith, p->n_threads);
    }
    /* sequentially consistent, against the caller's caller_waits (see bn__pool_wait_parts) */
    bn__atomic_store64_sc(&s->state, (r << 1) | 1);
    if (bn__atomic_load(&p->caller_waits)) {
        bn__mutex_lock(&p->mutex);
        bn__cond_broadcast(&p->done);
        bn__mutex_unlock(&p->mutex);
    }
    return 1;
}

static int bn__pool_parts_done(bn_pool *p, long long r) {
    int i;
    for (i = 1; i < p->n_threads; i++)
        if (bn__atomic_load64_sc(&p->slots[i].state) != ((r << 1) | 1)) return 0;
    return 1;
}

/* The caller: wait until every part of region r has finished. */
static void bn__pool_wait_parts(bn_pool *p, long long r) {
    int i, spin = 0;
    for (i = 1; i < p->n_threads; i++)
        while (bn__atomic_load64(&p->slots[i].state) != ((r << 1) | 1)) {
            if (++spin >= BN__POOL_SPIN) goto sleep;
            bn__spin_pause(spin);
        }
    return;
sleep:
    bn__mutex_lock(&p->mutex);
    bn__atomic_add_sc(&p->caller_waits, 1);
    while (!bn__pool_parts_done(p, r)) bn__cond_wait(&p->done, &p->mutex);
    bn__atomic_add_sc(&p->caller_waits, -1);
    bn__mutex_unlock(&p->mutex);
}

/* Worker w: wait for a region after `seen`, prefetching its share of the
   hint meanwhile; the region's number, or -1 to stop. */
static long long bn__pool_wait_region(bn_pool *p, long long seen, bn__worker *w) {
    long long r;
    int i;
    for (i = 0; i < BN__POOL_SPIN; i++) {
        r = bn__atomic_load64(&p->region);
        if (r != seen) return r;
        if (bn__atomic_load(&p->stop)) return -1;
        if (!bn__worker_prefetch(w)) bn__spin_pause(i);
    }
    bn__mutex_lock(&p->mutex);
    bn__atomic_add_sc(&p->sleepers, 1);
    while ((r = bn__atomic_load64_sc(&p->region)) == seen && !bn__atomic_load(&p->stop))
        bn__cond_wait(&p->wake, &p->mutex);
    bn__atomic_add_sc(&p->sleepers, -1);
    bn__mutex_unlock(&p->mutex);
    return bn__atomic_load(&p->stop) ? -1 : r;
}

static void bn__pool_worker_loop(bn__worker *w) {
    bn_pool *p = w->pool;
    long long r = 0;
    while ((r = bn__pool_wait_region(p, r, w)) >= 0) bn__pool_run_part(p, w->ith, r, w);
}

#if defined(_WIN32)
static DWORD WINAPI bn__pool_thread_main(LPVOID arg) {
    bn__pool_worker_loop((bn__worker *)arg);
    return 0;
}
static int bn__thread_start(bn__thread *t, bn__worker *w) {
    *t = CreateThread(NULL, 0, bn__pool_thread_main, w, 0, NULL);
    return *t != NULL;
}
static void bn__thread_join(bn__thread t) {
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}
#else
static void *bn__pool_thread_main(void *arg) {
    bn__pool_worker_loop((bn__worker *)arg);
    return NULL;
}
static int bn__thread_start(bn__thread *t, bn__worker *w) {
    return pthread_create(t, NULL, bn__pool_thread_main, w) == 0;
}
static void bn__thread_join(bn__thread t) { pthread_join(t, NULL); }
#endif

BN_API bn_pool *bn_pool_new(int n_threads) {
    bn_pool *p = BN_ZALLOC(bn_pool, 1);
    int i;
    if (!p) return NULL;
    if (n_threads <= 0) n_threads = bn_cpu_count();
    n_threads = BN_MIN(n_threads, BN__POOL_MAX_THREADS);
    p->threads = BN_ZALLOC(bn__thread, n_threads);
    p->workers = BN_ZALLOC(bn__worker, n_threads);
    p->slots_mem = bn__zalloc(sizeof(bn__slot) * (size_t)(n_threads + 1));
    if (!p->threads || !p->workers || !p->slots_mem) {
        BN_FREE(p->threads);
        BN_FREE(p->workers);
        BN_FREE(p->slots_mem);
        BN_FREE(p);
        return NULL;
    }
    p->slots = (bn__slot *)((char *)p->slots_mem + (64 - (uintptr_t)p->slots_mem % 64) % 64);
    bn__mutex_init(&p->mutex);
    bn__cond_init(&p->wake);
    bn__cond_init(&p->done);
    /* Workers read n_threads in every region: fix it before they start, then
       shrink it if some thread could not be created. */
    p->n_threads = n_threads;
    for (i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (!bn__thread_start(&p->threads[i], &p->workers[i])) break;
        p->n_started++;
    }
    p->n_threads = p->n_started + 1; /* no region has run yet, so no worker has read it */
    return p;
}

BN_API void bn_pool_free(bn_pool *pool) {
    int i;
    if (!pool) return;
    bn__mutex_lock(&pool->mutex);
    bn__atomic_add_sc(&pool->stop, 1);
    bn__cond_broadcast(&pool->wake);
    bn__mutex_unlock(&pool->mutex);
    for (i = 1; i <= pool->n_started; i++) bn__thread_join(pool->threads[i]);
    bn__cond_destroy(&pool->wake);
    bn__cond_destroy(&pool->done);
    bn__mutex_destroy(&pool->mutex);
    BN_FREE(pool->threads);
    BN_FREE(pool->workers);
    BN_FREE(pool->slots_mem);
    BN_FREE(pool);
}

BN_API int bn_pool_size(const bn_pool *pool) { return pool ? pool->n_threads : 1; }

BN_API void bn_pool_profile(bn_pool *pool, bn_pool_stats *stats) {
    if (pool) pool->stats = stats;
}

/* Add region r's times (started at t_start) to the pool's stats. */
static void bn__pool_account(bn_pool *p, double t_start) {
    double wall = bn__clock() - t_start, busy = 0.0;
    int i;
    for (i = 0; i < p->n_threads; i++) {
        busy += p->slots[i].t1 - p->slots[i].t0;
        p->stats->late += p->slots[i].t0 - t_start;
    }
    p->stats->wall += wall;
    p->stats->busy += busy;
    p->stats->idle += wall * p->n_threads - busy;
    p->stats->regions++;
}

BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg) {
    long long r;
    double t_start = 0.0;
    int i;
    if (!pool || pool->n_threads == 1) {
        if (pool && pool->stats) t_start = bn__clock();
        fn(arg, 0, 1);
        if (pool && pool->stats) {
            pool->slots[0].t0 = t_start;
            pool->slots[0].t1 = bn__clock();
            bn__pool_account(pool, t_start);
        }
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    r = pool->region + 1;
    if (pool->stats) t_start = bn__clock();
    /* publishes fn and arg; sequentially consistent against a worker going to
       sleep (it counts itself in `sleepers`, then reads `region`) */
    bn__atomic_store64_sc(&pool->region, r);
    if (bn__atomic_load(&pool->sleepers)) {
        bn__mutex_lock(&pool->mutex);
        bn__cond_broadcast(&pool->wake);
        bn__mutex_unlock(&pool->mutex);
    }
    bn__pool_run_part(pool, 0, r, NULL);
    for (i = 1; i < pool->n_threads; i++) bn__pool_run_part(pool, i, r, NULL); /* workers not started yet */
    bn__pool_wait_parts(pool, r);
    if (pool->stats) bn__pool_account(pool, t_start);
}

#endif /* BITNET_NO_THREADS */

/* A work split for one parallel region: [0, n) cut into nth contiguous
   ranges, range ith for thread ith, who takes it front to back, each time
   half of what is left of it (at least `part` units); a thread whose range
   is used up takes `part` units at a time from the back of the others'
   ranges, so a slow or late thread does not hold the region up.

   Each thread thus streams one long run of memory, which the prefetches
   follow, in a few parts. Parts handed out from one shared counter (the
   former split) sent every thread from one place to another, each time
   without prefetched lines ahead of it, and made all threads queue for that
   counter's cache line: on a 16-core Xeon it held decode at 16 threads to
   74 % of the memory roofline. Small parts of a thread's own range cost too:
   one thread took 15 % longer per token in parts of 16 rows than in halves.
   The ranges live in the pool's slots (one cache line per thread);
   bn__split_init runs on the caller before bn_pool_run. */
typedef struct bn__split {
    bn__slot *slots; /* the pool's, or `own` */
    bn__slot own;
    int part;
} bn__split;

static long long bn__range_pack(int lo, int hi) {
    return (long long)((unsigned long long)(unsigned)lo | (unsigned long long)(unsigned)hi << 32);
}

static void bn__split_init(bn__split *s, bn_pool *pool, int n, int part) {
    int nth = bn_pool_size(pool), i, lo, hi;
    s->slots = bn__pool_slots(pool);
    if (!s->slots || nth == 1) s->slots = &s->own;
    s->part = BN_MAX(part, 1);
    for (i = 0; i < nth; i++) {
        bn_split_range(n, i, nth, &lo, &hi);
        s->slots[i].range = bn__range_pack(lo, hi);
    }
}

/* The next part [*lo, *hi) for thread ith of nth; 0 when all is taken. */
static int bn__split_next(bn__split *s, int ith, int nth, int *lo, int *hi) {
    int k;
    for (k = 0; k < nth; k++) {
        long long *cell = &s->slots[(ith + k) % nth].range;
        for (;;) {
#if defined(BITNET_NO_THREADS)
            long long v = *cell;
#else
            long long v = bn__atomic_load64(cell);
#endif
            int a = (int)(v & 0xffffffff), b = (int)((unsigned long long)v >> 32);
            if (a >= b) break;
            if (k == 0) { /* our own range: half of it from the front */
                *lo = a;
                *hi = BN_MIN(a + BN_MAX(s->part, (b - a) / 2), b);
            } else { /* another's: a part from the back */
                *lo = BN_MAX(b - s->part, a);
                *hi = b;
            }
#if defined(BITNET_NO_THREADS)
            *cell = k == 0 ? bn__range_pack(*hi, b) : bn__range_pack(a, *lo);
#else
            if (!bn__atomic_cas64(cell, v, k == 0 ? bn__range_pack(*hi, b) : bn__range_pack(a, *lo))) continue;
#endif
            return 1;
        }
    }
    return 0;
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_THREADS_H */
