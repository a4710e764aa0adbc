#ifndef BN_PART_THREADS_H
#define BN_PART_THREADS_H
/* A persistent thread pool: threads are created once and woken for each
   parallel region, never spawned per operation.

   bn_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once for each ith in
   [0, nth), concurrently on the pool's nth threads (the calling thread is
   one of them; a thread may run several ith when another is slow to wake),
   and returns when all calls are done. A NULL pool runs fn(arg, 0, 1) on the caller: every parallel
   function in this library also works single-threaded.

   One pool serves one caller at a time (a context owns its pool); fn must not
   call bn_pool_run on the same pool. Workers wait for work by spinning
   briefly (a decode step runs hundreds of short parallel regions, and a
   sleeping thread takes tens of microseconds to wake) and then sleep on a
   condition variable, so an idle pool costs no CPU.

   pthreads on POSIX, Win32 threads on Windows; BITNET_NO_THREADS builds a
   pool of one thread (the caller). */

typedef struct bn_pool bn_pool;
typedef void (*bn_pool_fn)(void *arg, int ith, int nth);

BN_EXTERN_C_BEGIN
/* n_threads <= 0 means one per available core. NULL when out of memory or
   when no thread could be created. */
BN_API bn_pool *bn_pool_new(int n_threads);
BN_API void bn_pool_free(bn_pool *pool);
BN_API int bn_pool_size(const bn_pool *pool); /* 1 for NULL */
BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg);
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
/* Polls of the shared counters before a waiting thread goes to sleep. */
#define BN__POOL_SPIN 20000

#if defined(BITNET_NO_THREADS)

struct bn_pool {
    int n_threads;
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

BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg) {
    BN_UNUSED(pool);
    fn(arg, 0, 1);
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
#define bn__atomic_load(p) InterlockedCompareExchange((volatile LONG *)(p), 0, 0)
#define bn__atomic_store(p, v) InterlockedExchange((volatile LONG *)(p), (LONG)(v))
#define bn__atomic_dec(p) InterlockedDecrement((volatile LONG *)(p)) /* returns the new value */
#define bn__atomic_load64(p) InterlockedCompareExchange64((volatile LONGLONG *)(p), 0, 0)
#define bn__atomic_store64(p, v) InterlockedExchange64((volatile LONGLONG *)(p), (LONGLONG)(v))
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
#define bn__atomic_load(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define bn__atomic_store(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define bn__atomic_dec(p) __atomic_sub_fetch(p, 1, __ATOMIC_ACQ_REL)
#define bn__atomic_load64(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#define bn__atomic_store64(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
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

typedef struct bn__worker {
    bn_pool *pool;
    int ith;
} bn__worker;

/* A region's nth parts ("slots", the ith of fn) are claimed by whichever
   threads get there first: the caller claims slots too, and runs the parts
   of workers that have not woken up yet. So on a loaded machine, where a
   worker may sit descheduled for a whole time slice, the caller does not
   wait for it; a late worker finds no slot left and goes back to waiting.
   `slots` holds (region number << 16) | next unclaimed slot, so that a claim
   (compare-and-swap) can only succeed in the region it was read from. */
struct bn_pool {
    int n_threads;
    int n_started;          /* worker threads created (n_threads - 1 when all went well) */
    bn_pool_fn fn;          /* the current parallel region */
    void *arg;
    /* Shared counters, read with atomic loads while spinning and changed
       under `mutex` when a sleeping thread must not miss the change. */
    long long slots;        /* (region << 16) | next slot */
    long pending;           /* slots of the current region not finished yet */
    long stop;
    bn__mutex mutex;
    bn__cond wake;          /* a region started, or stop */
    bn__cond done;          /* pending reached 0 */
    bn__thread *threads;
    bn__worker *workers;
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

/* Now and then let another thread run: with more threads than free cores,
   the one we wait for may be waiting for our core. */
static void bn__spin_pause(int i) {
    if (i % 64 == 63)
        bn__yield();
    else
        bn__cpu_relax();
}

/* Claim and run slots of the current region until none is left. */
static void bn__pool_work(bn_pool *p) {
    for (;;) {
        long long v = bn__atomic_load64(&p->slots);
        int slot = (int)(v & 0xffff);
        bn_pool_fn fn;
        void *arg;
        if (slot >= p->n_threads) return;
        fn = p->fn; /* valid: the region cannot finish while a slot is unclaimed */
        arg = p->arg;
        if (!bn__atomic_cas64(&p->slots, v, v + 1)) continue;
        fn(arg, slot, p->n_threads);
        if (bn__atomic_dec(&p->pending) == 0) {
            bn__mutex_lock(&p->mutex);
            bn__cond_broadcast(&p->done);
            bn__mutex_unlock(&p->mutex);
        }
    }
}

static void bn__pool_worker_loop(bn__worker *w) {
    bn_pool *p = w->pool;
    long long seen = 0; /* the region number last worked on */
    for (;;) {
        int i;
        for (i = 0; i < BN__POOL_SPIN && (bn__atomic_load64(&p->slots) >> 16) == seen && !bn__atomic_load(&p->stop); i++)
            bn__spin_pause(i);
        if ((bn__atomic_load64(&p->slots) >> 16) == seen) {
            bn__mutex_lock(&p->mutex);
            while ((bn__atomic_load64(&p->slots) >> 16) == seen && !bn__atomic_load(&p->stop))
                bn__cond_wait(&p->wake, &p->mutex);
            bn__mutex_unlock(&p->mutex);
        }
        if (bn__atomic_load(&p->stop)) return;
        seen = bn__atomic_load64(&p->slots) >> 16;
        bn__pool_work(p);
    }
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
    if (!p->threads || !p->workers) {
        BN_FREE(p->threads);
        BN_FREE(p->workers);
        BN_FREE(p);
        return NULL;
    }
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
    bn__atomic_store(&pool->stop, 1);
    bn__cond_broadcast(&pool->wake);
    bn__mutex_unlock(&pool->mutex);
    for (i = 1; i <= pool->n_started; i++) bn__thread_join(pool->threads[i]);
    bn__cond_destroy(&pool->wake);
    bn__cond_destroy(&pool->done);
    bn__mutex_destroy(&pool->mutex);
    BN_FREE(pool->threads);
    BN_FREE(pool->workers);
    BN_FREE(pool);
}

BN_API int bn_pool_size(const bn_pool *pool) { return pool ? pool->n_threads : 1; }

BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg) {
    long long region;
    int i;
    if (!pool || pool->n_threads == 1) {
        fn(arg, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->arg = arg;
    bn__atomic_store(&pool->pending, (long)pool->n_threads);
    region = (bn__atomic_load64(&pool->slots) >> 16) + 1;
    bn__mutex_lock(&pool->mutex);
    bn__atomic_store64(&pool->slots, region << 16); /* publishes fn and arg, slot 0 next */
    bn__cond_broadcast(&pool->wake);
    bn__mutex_unlock(&pool->mutex);

    bn__pool_work(pool);

    for (i = 0; i < BN__POOL_SPIN && bn__atomic_load(&pool->pending) != 0; i++) bn__spin_pause(i);
    if (bn__atomic_load(&pool->pending) != 0) {
        bn__mutex_lock(&pool->mutex);
        while (bn__atomic_load(&pool->pending) != 0) bn__cond_wait(&pool->done, &pool->mutex);
        bn__mutex_unlock(&pool->mutex);
    }
}

#endif /* BITNET_NO_THREADS */

/* Guided self-scheduling of [0, n) inside a parallel region: each call hands
   the calling thread the next part, [*lo, *hi), a share of what is left
   (remaining / (2 nth), at least min_part) so that the first parts are big
   (a thread streams long runs of weights) and the last ones small; 0 when
   nothing is left. A thread that finishes early takes more, so one slow core
   (a busy host, an efficiency core) does not keep the others waiting at the
   end of the region. *next starts at 0 before bn_pool_run. */
static int bn__take_part(long long *next, int n, int nth, int min_part, int *lo, int *hi) {
    for (;;) {
#if defined(BITNET_NO_THREADS)
        long long v = *next;
#else
        long long v = bn__atomic_load64(next);
#endif
        long long part = BN_MAX((n - v) / (2 * nth), (long long)min_part), end = BN_MIN(v + part, (long long)n);
        if (v >= n) return 0;
#if defined(BITNET_NO_THREADS)
        *next = end;
#else
        if (!bn__atomic_cas64(next, v, end)) continue;
#endif
        *lo = (int)v;
        *hi = (int)end;
        return 1;
    }
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_THREADS_H */
