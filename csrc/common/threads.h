/* fastlstm's threads: the thread count, the team that runs the kernels'
 * parallel jobs, the per-step barrier and work counters.  A build without
 * OpenMP (FASTLSTM_NO_OPENMP) is the single-threaded build: everything runs
 * on the calling thread. */
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
/* FASTLSTM_JOIN_STEP=k, read once (for tests): the forward's unit split
 * admits no late-joining worker before step k, so that workers join
 * mid-call whatever the timing (engine.h, forward_loop).  0 when unset. */
size_t fl_forced_join_step(void);

/* The thread team.  fl_team_run(fn, ctx, nt, flags) runs fn(ctx, tid, nth)
 * once for each tid in [0, nth), the caller as tid 0, and returns when all
 * have returned; nth <= nt.  Where the team is fastlstm's own (FL_HAVE_TEAM:
 * POSIX threads and GCC/Clang atomics in a threaded build) its workers are
 * created on first use and live for the process:
 *   - between jobs a worker spins for FL_TEAM_SPIN_NS, then sleeps (a futex
 *     on Linux, a condition variable elsewhere); so nothing keeps spinning
 *     after a call and takes the cores from numpy's or another pool's
 *     threads, while a call that follows closely (a stream's next step)
 *     finds the workers awake;
 *   - a `small` job (flags FL_JOB_SMALL: too short to repay waiting for a worker that is not on
 *     a core: a sleeping one takes from tens of microseconds to milliseconds
 *     to be scheduled again in a virtual machine, a descheduled one a time
 *     slice) runs on the workers spinning on a core now (maybe none: then on
 *     the caller alone) and wakes the sleeping ones for the calls that
 *     follow, without waiting for them; while the cores are contended
 *     (fl_backing_off) it runs on the caller alone;
 *   - one caller at a time: a call made while the team runs another
 *     caller's job, or from inside a job, runs on its own thread (nth = 1).
 * Results never depend on nth (the kernels' splits fix each element's
 * summation order), so the team's size may vary from call to call.
 * Without FL_HAVE_TEAM: an OpenMP parallel region (MSVC), or one thread.
 * Returns nth. */
typedef void (*fl_job_fn)(void *ctx, int tid, int nth);
/* FL_JOB_TINY: a small job shorter than waking a sleeping worker costs its
 * caller (a futex wake of a halted virtual CPU: about 25 µs): it runs on the
 * workers spinning now, or alone, and wakes none. */
enum { FL_JOB_SMALL = 1, FL_JOB_JOINABLE = 2, FL_JOB_TINY = 4 };
int fl_team_run(fl_job_fn fn, void *ctx, int nt, int flags);
/* Joinable jobs (flags FL_JOB_JOINABLE, where fl_team_joinable() -> 1): a
 * worker may take its tid, and call fn, at any time until the caller's fn
 * returns, or never: the team starts the caller with the workers spinning
 * now (waiting for them to take their tids at most FL_BARRIER_SPIN_NS),
 * wakes the others without waiting for them (a small job too, onto free
 * cores), and after the caller's fn returns takes the tids still untaken
 * and waits only for the workers that took theirs.  The job runs the share
 * of a worker that has not come on the threads that have, and admits it
 * when it comes (the forward's unit split, engine.h: at a step boundary).
 * fl_team_taken() -> the workers that have taken a tid of the current job
 * so far (tids 1 .. that; the caller's fn asks).  Elsewhere (OpenMP) every
 * tid runs from the start, as for any job. */
int fl_team_joinable(void);
int fl_team_taken(void);
/* 1 on a thread running a team job (the caller's included). */
int fl_in_team(void);

/* The per-step barrier of the kernels' time loops: all nth threads of the
 * current job wait until each has arrived.  A shared arrival counter that
 * only grows: every thread counts its own rounds and waits for round * nth
 * arrivals (release/acquire: what a thread wrote before arriving is visible
 * to every thread after the wait).  A waiter spins with a pause for at most
 * FL_BARRIER_SPIN_NS, then sleeps until the round completes; with more
 * threads than the process's CPUs (fl_barrier_init decides) it sleeps at
 * once.  A thread that is descheduled mid-step then costs its partners a
 * sleep and a wake-up, not their time slices, and gives the scheduler a
 * free core to run it on.  One fl_barrier per job, initialised by
 * fl_barrier_init before it; each thread's `round` starts at 0. */
typedef struct fl_barrier {
    size_t count;  /* arrivals, only grows */
    unsigned wake; /* bumped when a round completes while a thread sleeps */
    int sleepers;  /* threads asleep (or about to sleep) on `wake` */
    long spin_ns;  /* how long a waiter spins before it sleeps */
    size_t slept;  /* waits that ran out of spinning (a partner was late) */
} fl_barrier;
void fl_barrier_init(fl_barrier *b, int nth);
void fl_barrier_wait(fl_barrier *b, size_t *round, int nth);

/* Contention: when the cores are shared with other busy threads, a team
 * whose time loop meets at a barrier every few microseconds loses a
 * scheduler wake-up whenever one of its threads is descheduled, and runs
 * slower than one thread would.  A time loop reports, after a call, how
 * many of its barrier waits found a partner late (b.slept) out of its
 * steps; when that is more than one step in FL_CONTENDED_STEPS (or when the
 * caller of a small job had to wait for a late worker), calls of short
 * steps and small jobs run on one thread for the next FL_BACKOFF_NS, then
 * try the team again (fl_backing_off() -> 1 meanwhile). */
void fl_note_contention(const fl_barrier *b, size_t steps);
int fl_backing_off(void);

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
/* Words the threads of a time loop hand each other outside the barrier
 * (the forward's late joins): acquire loads, release stores, and the
 * pause of a spin-wait. */
static inline size_t fl_word_load(const size_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void fl_word_store(size_t *p, size_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline void fl_spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
#else
#define FL_HAVE_TAKE 0
/* without atomics there are no late joins (fl_team_joinable() -> 0) */
static inline size_t fl_word_load(const size_t *p) { return *(const volatile size_t *)p; }
static inline void fl_word_store(size_t *p, size_t v) { *(volatile size_t *)p = v; }
static inline void fl_spin_pause(void) {}
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
