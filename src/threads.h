#ifndef BN_PART_THREADS_H
#define BN_PART_THREADS_H
/* A persistent thread pool: threads are created once and woken for each
   parallel region, never spawned per operation.

   bn_pool_run(pool, fn, arg) calls fn(arg, ith, nth) once on each of the nth
   threads (the calling thread is one of them, ith = 0) and returns when all
   are done. A NULL pool runs fn(arg, 0, 1) on the caller: every parallel
   function in this library also works single-threaded.

   (Serial placeholder: the kernels issue replaces the implementation with
   pthreads / Win32 threads; the API stays.) */

typedef struct bn_pool bn_pool;
typedef void (*bn_pool_fn)(void *arg, int ith, int nth);

BN_EXTERN_C_BEGIN
/* n_threads <= 0 means one per available core. */
BN_API bn_pool *bn_pool_new(int n_threads);
BN_API void bn_pool_free(bn_pool *pool);
BN_API int bn_pool_size(const bn_pool *pool); /* 1 for NULL */
BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg);
/* Split [0, n) into nth nearly equal parts; part ith is [*lo, *hi). */
BN_API void bn_split_range(int n, int ith, int nth, int *lo, int *hi);
BN_EXTERN_C_END

#ifdef BITNET_IMPLEMENTATION

struct bn_pool {
    int n_threads;
};

BN_API bn_pool *bn_pool_new(int n_threads) {
    bn_pool *p = BN_ZALLOC(bn_pool, 1);
    BN_UNUSED(n_threads);
    if (p) p->n_threads = 1;
    return p;
}

BN_API void bn_pool_free(bn_pool *pool) { BN_FREE(pool); }

BN_API int bn_pool_size(const bn_pool *pool) { return pool ? pool->n_threads : 1; }

BN_API void bn_pool_run(bn_pool *pool, bn_pool_fn fn, void *arg) {
    int i, n = bn_pool_size(pool);
    for (i = 0; i < n; i++) fn(arg, i, n);
}

BN_API void bn_split_range(int n, int ith, int nth, int *lo, int *hi) {
    int base = n / nth, rem = n % nth;
    *lo = ith * base + BN_MIN(ith, rem);
    *hi = *lo + base + (ith < rem ? 1 : 0);
}

#endif /* BITNET_IMPLEMENTATION */
#endif /* BN_PART_THREADS_H */
