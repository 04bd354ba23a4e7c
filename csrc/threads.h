/* fastlstm thread count: one level of OpenMP parallelism, owned by fastlstm.
 * Without OpenMP (FASTLSTM_NO_OPENMP) everything runs on one thread. */
#ifndef FASTLSTM_THREADS_H
#define FASTLSTM_THREADS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of threads fastlstm's kernels use (>= 1). */
int fl_get_num_threads(void);
/* Set it; n < 1 restores the default (cores available to the process,
 * or FASTLSTM_NUM_THREADS when set). Returns the value now in force. */
int fl_set_num_threads(int n);
/* FASTLSTM_SPLIT, read once: FL_SPLIT_BATCH ("batch"), FL_SPLIT_UNITS
 * ("units") or 0 (unset: the kernel chooses). */
enum { FL_SPLIT_BATCH = 1, FL_SPLIT_UNITS = 2 };
int fl_forced_split(void);
/* 1 when compiled with OpenMP. */
int fl_have_openmp(void);

/* The per-step barrier of the kernels' time loops: all nth threads of the
 * current parallel region wait until each has arrived.  An OpenMP barrier
 * costs ~0.4 us on two cores, a time step of a small batch a few us, so
 * with GCC/Clang atomics it is a shared arrival counter that only grows:
 * every thread counts its own rounds and waits for round * nth arrivals
 * (release/acquire: what a thread wrote before arriving is visible to every
 * thread after the wait).  A waiter spins with a pause for about a
 * millisecond, then yields the core (more threads than free cores must not
 * starve the thread being waited for).  Zero-initialise one fl_barrier per
 * parallel region; each thread's `round` starts at 0. */
typedef struct fl_barrier {
    size_t count;
} fl_barrier;
void fl_yield(void);
#if defined(__GNUC__) || defined(__clang__)
#define FL_SPIN_BEFORE_YIELD 20000
static inline void fl_barrier_wait(fl_barrier *b, size_t *round, int nth)
{
    const size_t target = (*round += (size_t)nth);
    unsigned spins = 0;
    if (nth <= 1)
        return;
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
}
#else
static inline void fl_barrier_wait(fl_barrier *b, size_t *round, int nth)
{
    (void)b;
    (void)round;
#ifdef _OPENMP
    if (nth > 1) {
#pragma omp barrier
    }
#else
    (void)nth;
#endif
}
#endif

#ifdef __cplusplus
}
#endif
#endif
