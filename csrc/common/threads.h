/* fastlstm thread count: one level of OpenMP parallelism, owned by fastlstm.
 * Without OpenMP (FASTLSTM_NO_OPENMP) everything runs on one thread. */
#ifndef FASTLSTM_THREADS_H
#define FASTLSTM_THREADS_H

#include <stddef.h>

#include "fastlstm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* fl_get_num_threads, fl_set_num_threads and fl_have_openmp are public
 * (fastlstm.h). */
/* FASTLSTM_SPLIT, read once: FL_SPLIT_BATCH ("batch"), FL_SPLIT_UNITS
 * ("units") or 0 (unset: the kernel chooses). */
enum { FL_SPLIT_BATCH = 1, FL_SPLIT_UNITS = 2 };
int fl_forced_split(void);

/* The per-step barrier of the kernels' time loops: all nth threads of the
 * current parallel region wait until each has arrived.  An OpenMP barrier
 * is a sizeable part of a small batch's time step, so with GCC/Clang
 * atomics it is a shared arrival counter that only grows:
 * every thread counts its own rounds and waits for round * nth arrivals
 * (release/acquire: what a thread wrote before arriving is visible to every
 * thread after the wait).  A waiter spins with a pause, then yields.
 * Spinning only pays while every thread has a core: with more threads than
 * the process's CPUs (counted at the first call; fl_barrier_init decides)
 * it is the OpenMP barrier, which sleeps (a spinning waiter would hold the
 * CPU of a thread it waits for).  One fl_barrier per parallel region,
 * initialised by fl_barrier_init before it; each thread's `round` starts
 * at 0. */
typedef struct fl_barrier {
    size_t count;
    int spin;
} fl_barrier;
void fl_barrier_init(fl_barrier *b, int nth);
void fl_yield(void);
#define FL_SPIN_BEFORE_YIELD 20000
static inline void fl_barrier_wait(fl_barrier *b, size_t *round, int nth)
{
    if (nth <= 1)
        return;
#if defined(__GNUC__) || defined(__clang__)
    if (b->spin) {
        const size_t target = (*round += (size_t)nth);
        unsigned spins = 0;
        __atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL);
        while (__atomic_load_n(&b->count, __ATOMIC_ACQUIRE) < target) {
            if (spins < FL_SPIN_BEFORE_YIELD) {
                spins++;
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                fl_yield();
            }
        }
        return;
    }
#endif
    (void)b;
    (void)round;
#ifdef _OPENMP
#pragma omp barrier
#endif
}

/* Work items of a time loop's steps, taken by several threads: a counter
 * that runs through s n .. (s + 1) n - 1 during step s (n items per step;
 * all taken before the step's barrier, so it starts the next step at
 * (s + 1) n).  fl_take -> 1 and *item in [0, n), or 0 when step s has none
 * left; it never takes an item of a later step.  Counters of different
 * threads sit FL_CTR_STRIDE size_t's apart (a cache line).  Only with
 * GCC/Clang atomics (FL_HAVE_TAKE); callers do without it otherwise. */
#define FL_CTR_STRIDE (64 / sizeof(size_t))
#if defined(__GNUC__) || defined(__clang__)
#define FL_HAVE_TAKE 1
static inline int fl_take(size_t *ctr, size_t s, size_t n, size_t *item)
{
    size_t x = __atomic_load_n(ctr, __ATOMIC_RELAXED);
    while (x < (s + 1) * n)
        if (__atomic_compare_exchange_n(ctr, &x, x + 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            *item = x - s * n;
            return 1;
        }
    return 0;
}
#else
#define FL_HAVE_TAKE 0
static inline int fl_take(size_t *ctr, size_t s, size_t n, size_t *item)
{
    (void)ctr;
    (void)s;
    (void)n;
    (void)item;
    return 0;
}
#endif

#ifdef __cplusplus
}
#endif
#endif
