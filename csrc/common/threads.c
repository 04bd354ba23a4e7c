/* fastlstm thread count (see threads.h). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L /* sched_yield under -std=c99 */
#endif
#include "threads.h"

#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define FL_HAVE_SCHED_YIELD 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* without OpenMP there is one thread and nothing to decide */
#ifdef _OPENMP
static int fl_threads = 0; /* 0: not yet decided */

static int default_threads(void)
{
    const char *env = getenv("FASTLSTM_NUM_THREADS");
    if (env != NULL) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end != env && v >= 1 && v <= 4096)
            return (int)v;
    }
    return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
}
#endif

int fl_get_num_threads(void)
{
#ifdef _OPENMP
    if (fl_threads <= 0)
        fl_threads = default_threads();
    return fl_threads;
#else
    return 1;
#endif
}

int fl_set_num_threads(int n)
{
#ifdef _OPENMP
    fl_threads = n >= 1 ? n : default_threads();
    return fl_threads;
#else
    (void)n;
    return 1;
#endif
}

int fl_forced_split(void)
{
    static int forced = -1; /* racing first calls compute the same value */
    if (forced < 0) {
        const char *env = getenv("FASTLSTM_SPLIT");
        forced = env == NULL                 ? 0
                 : strcmp(env, "batch") == 0 ? FL_SPLIT_BATCH
                 : strcmp(env, "units") == 0 ? FL_SPLIT_UNITS
                                             : 0;
    }
    return forced;
}

int fl_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void fl_yield(void)
{
#ifdef FL_HAVE_SCHED_YIELD
    sched_yield();
#endif
}

void fl_barrier_init(fl_barrier *b, int nth)
{
    /* the CPUs the process may use, read once (a system call each time) */
    static int cpus = 0; /* racing first calls store the same value */
#ifdef _OPENMP
    if (cpus <= 0)
        cpus = omp_get_num_procs();
#else
    cpus = 1;
#endif
    b->count = 0;
    b->spin = nth <= cpus;
}
