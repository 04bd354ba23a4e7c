/* fastlstm's threads (see threads.h). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* syscall() under -std=c99 */
#endif
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthreads under -std=c99 */
#endif
#include "threads.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <signal.h>
#include <time.h>
#define FL_HAVE_ATFORK 1
#if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__))
#define FL_HAVE_TEAM 1
#endif
#endif
#ifdef __linux__
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
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
static void team_after_fork(void);
static void after_fork_in_child(void)
{
    team_after_fork();
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

size_t fl_forced_join_step(void)
{
    static int read = 0; /* racing first calls compute the same value */
    static size_t step = 0;
    if (!read) {
        const char *env = getenv("FASTLSTM_JOIN_STEP");
        char *end = NULL;
        const unsigned long long v = env ? strtoull(env, &end, 10) : 0;
        step = env && end != env && *end == '\0' && v <= SIZE_MAX ? (size_t)v : 0;
        read = 1;
    }
    return step;
}

int fl_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* ---- sleeping and waking ------------------------------------------------ */
#if defined(__GNUC__) || defined(__clang__)
#define FL_LOAD(p) __atomic_load_n(p, __ATOMIC_SEQ_CST)
#define FL_STORE(p, v) __atomic_store_n(p, v, __ATOMIC_SEQ_CST)
#define FL_ADD(p, v) __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST)

#endif

#if defined(FL_HAVE_TEAM)
static long long fl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
#endif

/* fl_sleep_while(word, seen): sleep while *word == seen (maybe waking
 * spuriously); fl_wake_all(word): wake every thread asleep on word, after
 * the caller changed it.  A futex on Linux; elsewhere one process-wide
 * mutex and condition variable (waking every sleeper, each rechecks). */
#if defined(__linux__) && defined(FL_HAVE_TEAM)
static void fl_sleep_while(unsigned *word, unsigned seen)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}
static void fl_wake_all(unsigned *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
static void fl_sleep_after_fork(void) {}
#elif defined(FL_HAVE_TEAM)
static pthread_mutex_t fl_sleep_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fl_sleep_cv = PTHREAD_COND_INITIALIZER;
static void fl_sleep_while(unsigned *word, unsigned seen)
{
    pthread_mutex_lock(&fl_sleep_mu);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) == seen)
        pthread_cond_wait(&fl_sleep_cv, &fl_sleep_mu);
    pthread_mutex_unlock(&fl_sleep_mu);
}
static void fl_wake_all(unsigned *word)
{
    (void)word;
    pthread_mutex_lock(&fl_sleep_mu);
    pthread_cond_broadcast(&fl_sleep_cv);
    pthread_mutex_unlock(&fl_sleep_mu);
}
static void fl_sleep_after_fork(void)
{
    pthread_mutex_init(&fl_sleep_mu, NULL);
    pthread_cond_init(&fl_sleep_cv, NULL);
}
#endif

/* ---- the barrier ---------------------------------------------------------- */
/* How long a barrier waiter (or a caller waiting for its job's workers)
 * spins before it sleeps: a few time steps of a small batch, far less than
 * a scheduler time slice. */
#ifndef FL_BARRIER_SPIN_NS
#define FL_BARRIER_SPIN_NS 20000
#endif

/* The CPUs the process may use, read once (a system call each time). */
static int fl_cpus(void)
{
    static int cpus = 0; /* racing first calls store the same value */
#ifdef _OPENMP
    if (cpus <= 0)
        cpus = omp_get_num_procs();
#else
    cpus = 1;
#endif
    return cpus;
}

void fl_barrier_init(fl_barrier *b, int nth)
{
    const int cpus = fl_cpus();
    b->count = 0;
    b->wake = 0;
    b->sleepers = 0;
    b->spin_ns = nth <= cpus ? FL_BARRIER_SPIN_NS : 0;
    b->slept = 0;
}

void fl_barrier_wait(fl_barrier *b, size_t *round, int nth)
{
    if (nth <= 1)
        return;
#if defined(FL_HAVE_TEAM)
    const size_t target = (*round += (size_t)nth);
    if (FL_ADD(&b->count, 1) == target) { /* the last to arrive */
        if (FL_LOAD(&b->sleepers) > 0) {
            FL_ADD(&b->wake, 1);
            fl_wake_all(&b->wake);
        }
        return;
    }
    if (b->spin_ns > 0) {
        const long long t0 = fl_now_ns();
        unsigned spins = 0;
        while (__atomic_load_n(&b->count, __ATOMIC_ACQUIRE) < target) {
            fl_spin_pause();
            if ((++spins & 15) == 0 && fl_now_ns() - t0 > b->spin_ns)
                break;
        }
    }
    if (FL_LOAD(&b->count) < target)
        __atomic_add_fetch(&b->slept, 1, __ATOMIC_RELAXED);
    while (FL_LOAD(&b->count) < target) {
        /* the last arriver bumps `wake` after it counts itself and sees a
         * sleeper: either this thread sees its arrival, or it sees this
         * sleeper (both sequentially consistent) */
        const unsigned w = FL_LOAD(&b->wake);
        FL_ADD(&b->sleepers, 1);
        if (FL_LOAD(&b->count) < target)
            fl_sleep_while(&b->wake, w);
        FL_ADD(&b->sleepers, -1);
    }
#else
    (void)b;
    (void)round;
#ifdef _OPENMP
#pragma omp barrier
#endif
#endif
}

/* ---- contention --------------------------------------------------------- */
#ifndef FL_CONTENDED_STEPS
#define FL_CONTENDED_STEPS 16
#endif
#ifndef FL_BACKOFF_NS
#define FL_BACKOFF_NS 100000000LL
#endif
#if defined(FL_HAVE_TEAM)
static long long fl_backoff_until = 0;

static void fl_back_off(void)
{
    __atomic_store_n(&fl_backoff_until, fl_now_ns() + FL_BACKOFF_NS, __ATOMIC_RELAXED);
}

void fl_note_contention(const fl_barrier *b, size_t steps)
{
    if (b->slept > 0 && b->slept * FL_CONTENDED_STEPS > steps && b->spin_ns > 0)
        fl_back_off();
}

int fl_backing_off(void)
{
    const long long until = __atomic_load_n(&fl_backoff_until, __ATOMIC_RELAXED);
    return until != 0 && fl_now_ns() < until;
}
#else
void fl_note_contention(const fl_barrier *b, size_t steps)
{
    (void)b;
    (void)steps;
}
int fl_backing_off(void) { return 0; }
#endif

/* ---- the team --------------------------------------------------------------- */
#if defined(FL_HAVE_TEAM)
/* How long an idle worker spins for the next job before it sleeps: twice
 * the recent gap between one call's end and the next call's start (an
 * average over gaps under FL_TEAM_SPIN_MAX_NS: calls back to back; a longer
 * gap is idle time and leaves it alone), between FL_TEAM_SPIN_NS and
 * FL_TEAM_SPIN_MAX_NS.  A stream's steps (gaps of a few µs) get the
 * minimum; whole forwards of a small batch, whose Python work between
 * kernel calls takes longer than the minimum, find the worker awake. */
#ifndef FL_TEAM_SPIN_NS
#define FL_TEAM_SPIN_NS 100000
#endif
#ifndef FL_TEAM_SPIN_MAX_NS
#define FL_TEAM_SPIN_MAX_NS 400000
#endif
/* While a caller runs a job alone (a small job that found no worker awake,
 * fl_team_run), an idle worker stays awake for the caller's next call, up to
 * this long, and spins from the call's end as above; not while the team
 * backs off (fl_backing_off).  Otherwise a worker woken for the calls that
 * follow would spin out during such a call and be asleep again when the
 * next one comes, and back-to-back small calls would all run alone. */
#ifndef FL_TEAM_HOLD_NS
#define FL_TEAM_HOLD_NS 4000000
#endif
#define FL_TEAM_MAX_WORKERS 4095

/* A job is published by storing its fields, then `claim`, then `gen`.
 * claim = gen << 32 | (nth - 1) << 16 | workers that took a tid so far: a
 * worker takes tid k + 1 by a compare-and-swap from k, only while the word
 * still names the job it saw, so a late worker never joins a later job with
 * an earlier job's view. */
static struct {
    unsigned gen; /* futex word: jobs posted (wraps) */
    uint64_t claim;
    fl_job_fn fn;
    void *ctx;
    unsigned done;      /* futex word: workers finished with the job */
    int caller_sleeps;  /* the caller is asleep on `done` */
    int sleepers;       /* workers asleep (or about to) on `gen` */
    int workers;        /* started */
    int busy;           /* a caller holds the team */
    int alone;          /* ... and runs its job without workers */
    long long last_end; /* when the last call released the team (ns) */
    long long gap_ns;   /* the recent gap between calls (see FL_TEAM_SPIN_NS) */
} team;

/* Each worker stores the time while it spins for a job (0 while it works
 * or sleeps): a worker whose beat is recent runs on a core now, not merely
 * awake but descheduled.  (Untouched slots cost no memory.) */
#define FL_BEAT_NS 20000
static struct {
    long long beat;
    unsigned gen0; /* the gen when the worker was started */
    char pad[64 - sizeof(long long) - sizeof(unsigned)];
} slot[FL_TEAM_MAX_WORKERS];

/* Threads of the whole system runnable now, from /proc/loadavg ("a/b":
 * a runnable of b), read at most every FL_PROBE_NS (a read costs a couple of
 * microseconds); -1 where it cannot be read. */
#ifndef FL_PROBE_NS
#define FL_PROBE_NS 200000
#endif
static int fl_loadavg_fd = -2;
static long long fl_probe_at = 0;
static int fl_probe_runnable = -1;

static int runnable_threads(long long now)
{
#ifdef __linux__
    char buf[128];
    ssize_t n;
    const char *p;
    if (now - fl_probe_at < FL_PROBE_NS)
        return fl_probe_runnable;
    fl_probe_at = now;
    if (fl_loadavg_fd == -2)
        fl_loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    fl_probe_runnable = -1;
    if (fl_loadavg_fd < 0 || (n = pread(fl_loadavg_fd, buf, sizeof buf - 1, 0)) <= 0)
        return -1;
    buf[n] = '\0';
    p = buf; /* "0.50 0.40 0.30 3/512 4242": the fourth field */
    for (int field = 0; field < 3 && p; field++) {
        p = strchr(p, ' ');
        p = p ? p + 1 : NULL;
    }
    if (p)
        fl_probe_runnable = atoi(p);
    return fl_probe_runnable;
#else
    (void)now;
    return -1;
#endif
}

static int workers_running(long long now)
{
    const int n = team.workers;
    int running = 0;
    for (int w = 0; w < n; w++) {
        const long long b = __atomic_load_n(&slot[w].beat, __ATOMIC_RELAXED);
        running += b != 0 && now - b < FL_BEAT_NS;
    }
    return running;
}
static __thread int fl_in_job = 0;

int fl_in_team(void) { return fl_in_job; }

static void team_after_fork(void)
{
    /* the child has no workers: the team starts again from none */
    team.workers = 0;
    team.sleepers = 0;
    team.caller_sleeps = 0;
    team.busy = 0;
    team.alone = 0;
    team.last_end = team.gap_ns = 0;
    fl_sleep_after_fork();
}

/* How long an idle worker spins now (FL_TEAM_SPIN_NS). */
static long long team_spin_ns(void)
{
    const long long spin = 2 * __atomic_load_n(&team.gap_ns, __ATOMIC_RELAXED);
    return spin < FL_TEAM_SPIN_NS       ? FL_TEAM_SPIN_NS
           : spin > FL_TEAM_SPIN_MAX_NS ? FL_TEAM_SPIN_MAX_NS
                                        : spin;
}

static void *worker_main(void *arg)
{
    const int w = (int)(intptr_t)arg;
    long long *beat = &slot[w].beat;
    unsigned seen = slot[w].gen0;
    fl_in_job = 1; /* a job's nested calls run alone */
    for (;;) {
        unsigned g;
        long long t0 = fl_now_ns(), now, hold0 = 0;
        unsigned spins = 0;
        while ((g = __atomic_load_n(&team.gen, __ATOMIC_ACQUIRE)) == seen) {
            fl_spin_pause();
            if ((++spins & 15) != 0)
                continue;
            now = fl_now_ns();
            __atomic_store_n(beat, now, __ATOMIC_RELAXED);
            if (__atomic_load_n(&team.alone, __ATOMIC_RELAXED) &&
                (hold0 == 0 || now - hold0 <= FL_TEAM_HOLD_NS) && !fl_backing_off()) {
                hold0 = hold0 ? hold0 : now;
                t0 = now; /* the spin counts from the call's end */
                continue;
            }
            if (now - t0 <= team_spin_ns())
                continue;
            __atomic_store_n(beat, 0, __ATOMIC_RELAXED);
            /* the poster bumps gen, then wakes if it sees a sleeper */
            FL_ADD(&team.sleepers, 1);
            if (FL_LOAD(&team.gen) == seen)
                fl_sleep_while(&team.gen, seen);
            FL_ADD(&team.sleepers, -1);
            t0 = fl_now_ns(); /* woken: spin again for the calls that follow */
            hold0 = 0;
        }
        __atomic_store_n(beat, 0, __ATOMIC_RELAXED);
        seen = g;
        uint64_t c = __atomic_load_n(&team.claim, __ATOMIC_ACQUIRE);
        while ((unsigned)(c >> 32) == g) {
            const int nth = (int)((c >> 16) & 0xffff) + 1, k = (int)(c & 0xffff);
            if (k + 1 >= nth)
                break; /* every tid taken */
            if (__atomic_compare_exchange_n(&team.claim, &c, c + 1, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE)) {
                /* the job cannot end without this worker: its fields hold */
                team.fn(team.ctx, k + 1, nth);
                /* (the last of those that came: a joinable job waits only
                 * for them, so any of them may be the last) */
                FL_ADD(&team.done, 1);
                if (FL_LOAD(&team.caller_sleeps))
                    fl_wake_all(&team.done);
                break;
            }
        }
    }
    return NULL;
}

/* Start workers until there are `want` (or none can be started). */
static void team_grow(int want)
{
    sigset_t all, old;
    if (want > FL_TEAM_MAX_WORKERS)
        want = FL_TEAM_MAX_WORKERS;
    if (team.workers >= want)
        return;
    sigfillset(&all); /* signals stay with the process's own threads */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (team.workers < want) {
        pthread_t t;
        pthread_attr_t at;
        int ok = pthread_attr_init(&at) == 0;
        slot[team.workers].gen0 = team.gen;
        slot[team.workers].beat = 0;
        ok = ok && pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED) == 0 &&
             pthread_create(&t, &at, worker_main, (void *)(intptr_t)team.workers) == 0;
        pthread_attr_destroy(&at);
        if (!ok)
            break;
        team.workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Post a job of nth threads (nth - 1 workers) and wake the sleepers. */
static void team_post(fl_job_fn fn, void *ctx, int nth)
{
    const unsigned g = team.gen + 1;
    team.fn = fn;
    team.ctx = ctx;
    /* atomic: a worker of the previous job may still read them (a stale
     * read costs a spurious wake-up at most) */
    __atomic_store_n(&team.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&team.caller_sleeps, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&team.claim, (uint64_t)g << 32 | (uint64_t)(nth - 1) << 16, __ATOMIC_RELEASE);
    FL_STORE(&team.gen, g);
    if (FL_LOAD(&team.sleepers) > 0)
        fl_wake_all(&team.gen);
}

/* A call starts at `now` (the caller holds the team): the gap since the
 * last call's end updates the workers' spin (FL_TEAM_SPIN_NS). */
static void note_gap(long long now)
{
    const long long gap = now - team.last_end, avg = team.gap_ns;
    if (team.last_end == 0 || gap < 0 || gap >= FL_TEAM_SPIN_MAX_NS)
        return;
    __atomic_store_n(&team.gap_ns, avg ? (3 * avg + gap) / 4 : gap, __ATOMIC_RELAXED);
}

/* The caller lets the team go. */
static void team_release(void)
{
    team.last_end = fl_now_ns();
    __atomic_store_n(&team.busy, 0, __ATOMIC_RELEASE);
}

/* Wait until `want` workers have finished the job.  -> 1 when the caller
 * had to sleep (a worker was late). */
static int team_join(unsigned want)
{
    const long long t0 = fl_now_ns();
    unsigned spins = 0, d;
    while (__atomic_load_n(&team.done, __ATOMIC_ACQUIRE) != want) {
        fl_spin_pause();
        if ((++spins & 15) == 0 && fl_now_ns() - t0 > FL_BARRIER_SPIN_NS)
            break;
    }
    if (FL_LOAD(&team.done) == want)
        return 0;
    FL_STORE(&team.caller_sleeps, 1);
    while ((d = FL_LOAD(&team.done)) != want)
        fl_sleep_while(&team.done, d);
    FL_STORE(&team.caller_sleeps, 0);
    return 1;
}

/* Worker tids of the current job taken so far (tids 1 .. that). */
int fl_team_taken(void) { return (int)(__atomic_load_n(&team.claim, __ATOMIC_ACQUIRE) & 0xffff); }
int fl_team_joinable(void) { return 1; }

/* A joinable job's end: take the tids no worker has taken (a worker that
 * comes later finds none) -> the workers that did take one. */
static unsigned team_close(void)
{
    uint64_t c = __atomic_load_n(&team.claim, __ATOMIC_ACQUIRE);
    for (;;) {
        const uint64_t all = (c & ~(uint64_t)0xffff) | (c >> 16 & 0xffff);
        if (all == c || __atomic_compare_exchange_n(&team.claim, &c, all, 0, __ATOMIC_ACQ_REL,
                                                    __ATOMIC_ACQUIRE))
            return (unsigned)(c & 0xffff);
    }
}

int fl_team_run(fl_job_fn fn, void *ctx, int nt, int flags)
{
    const int small = (flags & (FL_JOB_SMALL | FL_JOB_TINY)) != 0;
    const int joinable = (flags & FL_JOB_JOINABLE) != 0, tiny = (flags & FL_JOB_TINY) != 0;
    int expect = 0;
    if (nt <= 1 || fl_in_job ||
        !__atomic_compare_exchange_n(&team.busy, &expect, 1, 0, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
        fn(ctx, 0, 1);
        return 1;
    }
    team_grow(nt - 1);
    const long long start = fl_now_ns();
    note_gap(start);
    int nth = nt <= team.workers + 1 ? nt : team.workers + 1;
    int wake_sleepers = 1, running = 0;
    if (small || joinable)
        running = workers_running(start);
    if (small) {
        /* the workers running now, no more than the cores the system's other
         * runnable threads leave, none while contended; sleeping workers are
         * woken for the calls that follow only onto a free core (else the
         * woken worker would take the caller's core for its spin) */
        const int runnable = runnable_threads(start);
        /* less the caller and our own workers that are not asleep (one
         * just woken is runnable before its first heartbeat) */
        const int awake = team.workers - FL_LOAD(&team.sleepers);
        const int others = runnable - 1 - (awake > running ? awake : running);
        const int free = runnable < 0 ? team.workers : fl_cpus() - 1 - (others > 0 ? others : 0);
        const int backing_off = fl_backing_off();
        int use = backing_off ? 0 : running < free ? running : free;
        wake_sleepers = free > running && !tiny;
        /* a joinable job takes sleeping workers too, onto free cores: it
         * never waits for them, they join it when they come */
        if (joinable && !backing_off && wake_sleepers)
            use = free;
        use = use > 0 ? use : 0;
        nth = nth <= use + 1 ? nth : use + 1;
    }
    if (nth <= 1) {
        /* woken now (a post with no tid to take), a worker is awake by the
         * end of this call and stays so for the next (FL_TEAM_HOLD_NS) */
        if (wake_sleepers && team.workers > 0 && FL_LOAD(&team.sleepers) > 0)
            team_post(fn, ctx, 1);
        __atomic_store_n(&team.alone, 1, __ATOMIC_RELAXED);
        fl_in_job = 1;
        fn(ctx, 0, 1);
        fl_in_job = 0;
        __atomic_store_n(&team.alone, 0, __ATOMIC_RELAXED);
        team_release();
        return 1;
    }
    team_post(fn, ctx, nth);
    if (joinable) {
        /* workers spinning now take their tids within microseconds: start
         * with them (the job admits the others when they come) */
        const int want = running < nth - 1 ? running : nth - 1;
        const long long t0 = fl_now_ns();
        unsigned spins = 0;
        while (fl_team_taken() < want) {
            fl_spin_pause();
            if ((++spins & 15) == 0 && fl_now_ns() - t0 > FL_BARRIER_SPIN_NS)
                break;
        }
    }
    fl_in_job = 1;
    fn(ctx, 0, nth);
    fl_in_job = 0;
    const unsigned came = joinable ? team_close() : (unsigned)(nth - 1);
    if (team_join(came) && small)
        fl_back_off();
    team_release();
    return nth;
}
#else
#if defined(_OPENMP) && defined(FL_HAVE_ATFORK)
static void team_after_fork(void) {}
#endif
int fl_in_team(void)
{
#ifdef _OPENMP
    return omp_in_parallel();
#else
    return 0;
#endif
}
int fl_team_taken(void) { return 0; }
int fl_team_joinable(void) { return 0; }
int fl_team_run(fl_job_fn fn, void *ctx, int nt, int flags)
{
    (void)flags;
#ifdef _OPENMP
    if (nt > 1 && !omp_in_parallel()) {
        int used = 1;
#pragma omp parallel num_threads(nt)
        {
#pragma omp single
            used = omp_get_num_threads();
            fn(ctx, omp_get_thread_num(), omp_get_num_threads());
        }
        return used;
    }
#endif
    (void)nt;
    fn(ctx, 0, 1);
    return 1;
}
#endif
