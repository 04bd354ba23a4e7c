/* fastlstm thread count (see threads.h). */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L /* sched_yield under -std=c99 */
#endif
#include "threads.h"

#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#define FL_HAVE_SCHED_YIELD 1
#define FL_HAVE_ATFORK 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

int fl_max_threads(void)
{
#ifdef _OPENMP
    const int procs = omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
    return procs < 2 ? 8 : (procs > 1024 ? 4096 : 4 * procs);
#else
    return 1;
#endif
}

int fl_env_num_threads(void)
{
    const char *env = getenv("FASTLSTM_NUM_THREADS");
    char *end = NULL;
    long v;
    if (env == NULL || *env == '\0')
        return 0;
    v = strtol(env, &end, 10);
    while (end != NULL && (*end == ' ' || *end == '\t' || *end == '\n'))
        end++;
    if (end == env || end == NULL || *end != '\0' || v < 1 || v > fl_max_threads())
        return -1;
    return (int)v;
}

/* without OpenMP there is one thread and nothing to decide */
#ifdef _OPENMP
static int fl_threads = 0; /* 0: not yet decided */
/* Set once a count above 1 was handed to a kernel: from then on the
 * OpenMP runtime may hold a pool of worker threads, which a forked child
 * does not inherit (GNU libgomp then waits forever for them). */
static volatile int fl_team_maybe_started = 0;
static volatile int fl_in_forked_child = 0;

static int default_threads(void)
{
    const int env = fl_env_num_threads();
    if (env >= 1)
        return env;
    return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1;
}

#ifdef FL_HAVE_ATFORK
static void after_fork_in_child(void)
{
    if (fl_team_maybe_started) {
        fl_in_forked_child = 1;
        fl_threads = 1;
    }
}

static void register_fork_handler(void)
{
    static volatile int registered = 0;
    if (!registered) {
        registered = 1;
        pthread_atfork(NULL, NULL, after_fork_in_child);
    }
}
#else
static void register_fork_handler(void) {}
#endif
#endif

int fl_get_num_threads(void)
{
#ifdef _OPENMP
    if (fl_threads <= 0)
        fl_threads = default_threads();
    if (fl_threads > 1 && !fl_team_maybe_started) {
        register_fork_handler();
        fl_team_maybe_started = 1;
    }
    return fl_threads;
#else
    return 1;
#endif
}

int fl_set_num_threads(int n)
{
#ifdef _OPENMP
    if (n > fl_max_threads())
        return -1;
    if (fl_in_forked_child)
        return fl_threads; /* 1: the parent's worker threads are gone */
    fl_threads = n >= 1 ? n : default_threads();
    return fl_threads;
#else
    (void)n;
    return 1;
#endif
}

int fl_forked_child(void)
{
#ifdef _OPENMP
    return fl_in_forked_child;
#else
    return 0;
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
