/* The machine: CPU model, cache sizes, CPUs available, FMA peak (see
 * cpuinfo.h and fastlstm.h). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthread_once under -std=c99 */
#endif
#include "cpuinfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "gemm_internal.h"
#include "threads.h"

#if defined(_WIN32)
#include <windows.h>
#else
#include <time.h>
#include <unistd.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FL_HAVE_PTHREAD_ONCE 1
#endif
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#if FL_X86 && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#define FL_HAVE_CPUID 1
#elif FL_X86 && defined(_MSC_VER)
#include <intrin.h>
#define FL_HAVE_CPUID 1
#endif

#if defined(FL_HAVE_CPUID) || defined(__linux__)
/* A data or unified cache of `level` holds `bytes`; `shared`: the CPUs that
 * share it (kept for L3 only). */
static void set_level(fl_cache_sizes *c, int level, size_t bytes, int shared)
{
    if (level == 1)
        c->l1d = bytes;
    else if (level == 2)
        c->l2 = bytes;
    else if (level == 3) {
        c->l3 = bytes;
        c->l3_shared = shared;
    }
}
#endif

/* ---- cpuid --------------------------------------------------------------- */
#ifdef FL_HAVE_CPUID
/* r = eax, ebx, ecx, edx of leaf / subleaf (zeros beyond the highest leaf). */
static void fl_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
#if defined(_MSC_VER) && !defined(__clang__)
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    for (int i = 0; i < 4; i++)
        r[i] = (unsigned)v[i];
#else
    const unsigned top = __get_cpuid_max(leaf & 0x80000000u, NULL);
    r[0] = r[1] = r[2] = r[3] = 0;
    if (leaf <= top)
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

/* The brand string (leaves 0x80000002..4), spaces trimmed; 0 if none. */
static int cpuid_model(char *out, size_t n)
{
    unsigned r[4], words[12];
    char text[49];
    fl_cpuid(0x80000000u, 0, r);
    if (r[0] < 0x80000004u)
        return 0;
    for (unsigned i = 0; i < 3; i++) {
        fl_cpuid(0x80000002u + i, 0, r);
        memcpy(words + 4 * i, r, sizeof r);
    }
    memcpy(text, words, 48);
    text[48] = '\0';
    char *s = text, *e = text + strlen(text);
    while (*s == ' ')
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\0'))
        *--e = '\0';
    if (*s == '\0')
        return 0;
    snprintf(out, n, "%s", s);
    return 1;
}

/* Caches from the deterministic cache parameters (leaf 4 on Intel and
 * others, 0x8000001D on AMD and Hygon: the same layout), else AMD's older
 * leaves 0x80000005/6.  -> 0, or -1. */
static int cpuid_caches(fl_cache_sizes *c)
{
    unsigned r[4], leaf = 4;
    char vendor[13];
    fl_cpuid(0, 0, r);
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = '\0';
    const int amd = strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0;
    if (amd) {
        fl_cpuid(0x80000001u, 0, r);
        leaf = r[2] & (1u << 22) ? 0x8000001Du : 0; /* TOPOEXT */
    }
    for (unsigned i = 0; leaf != 0 && i < 32; i++) {
        fl_cpuid(leaf, i, r);
        const unsigned type = r[0] & 31, level = (r[0] >> 5) & 7;
        if (type == 0)
            break;
        if (type != 1 && type != 3) /* instruction caches */
            continue;
        const size_t bytes = (size_t)((r[1] >> 22) + 1) * (((r[1] >> 12) & 0x3ff) + 1) *
                             ((r[1] & 0xfff) + 1) * ((size_t)r[2] + 1);
        set_level(c, (int)level, bytes, (int)((r[0] >> 14) & 0xfff) + 1);
    }
    if (c->l1d == 0 && amd) {
        fl_cpuid(0x80000005u, 0, r);
        c->l1d = (size_t)(r[2] >> 24) << 10;
        fl_cpuid(0x80000006u, 0, r);
        c->l2 = (size_t)(r[2] >> 16) << 10;
        c->l3 = (size_t)(r[3] >> 18) << 19;
    }
    return c->l1d > 0 ? 0 : -1;
}
#endif

/* ---- sysfs --------------------------------------------------------------- */
#if defined(__linux__)
/* The first line of a file, without its newline; 0 when unreadable. */
static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    const int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* "32K", "1M", "512" (bytes) -> bytes, 0 if unparsable. */
static size_t parse_size(const char *s)
{
    char *end;
    const unsigned long long v = strtoull(s, &end, 10);
    const size_t shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    return end == s ? 0 : (size_t)v << shift;
}

/* CPUs in a list such as "0-3,8,10-11". */
static int count_cpus(const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        const long a = strtol(s, &end, 10);
        long b = a;
        if (end == s)
            break;
        if (*end == '-')
            b = strtol(end + 1, &end, 10);
        n += b >= a ? (int)(b - a + 1) : 0;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

static int sysfs_caches(fl_cache_sizes *c)
{
    for (int i = 0; i < 16; i++) {
        char path[96], buf[256];
        const char *base = "/sys/devices/system/cpu/cpu0/cache/index";
        snprintf(path, sizeof path, "%s%d/level", base, i);
        if (!read_line(path, buf, sizeof buf))
            break;
        const int level = atoi(buf);
        snprintf(path, sizeof path, "%s%d/type", base, i);
        if (!read_line(path, buf, sizeof buf) || strcmp(buf, "Instruction") == 0)
            continue;
        snprintf(path, sizeof path, "%s%d/size", base, i);
        const size_t bytes = read_line(path, buf, sizeof buf) ? parse_size(buf) : 0;
        int shared = 0;
        snprintf(path, sizeof path, "%s%d/shared_cpu_list", base, i);
        if (level == 3 && read_line(path, buf, sizeof buf))
            shared = count_cpus(buf);
        set_level(c, level, bytes, shared);
    }
    return c->l1d > 0 ? 0 : -1;
}

/* /proc/cpuinfo's "model name" (x86 and others that have it). */
static int proc_model(char *out, size_t n)
{
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    int found = 0;
    if (f == NULL)
        return 0;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || colon == NULL)
            continue;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        line[strcspn(line, "\n")] = '\0';
        found = *colon != '\0';
        if (found)
            snprintf(out, n, "%s", colon);
    }
    fclose(f);
    return found;
}
#endif

int fl_cpu_read_caches(int source, fl_cache_sizes *out)
{
    memset(out, 0, sizeof *out);
    switch (source) {
    case FL_CACHES_CPUID:
#ifdef FL_HAVE_CPUID
        if (cpuid_caches(out) == 0)
            return 0;
#endif
        break;
    case FL_CACHES_SYSFS:
#if defined(__linux__)
        if (sysfs_caches(out) == 0)
            return 0;
#endif
        break;
    case FL_CACHES_DEFAULT: /* the machine the kernel's plans were tuned on */
        out->l1d = FL_DEFAULT_L1D;
        out->l2 = FL_DEFAULT_L2;
        out->l3 = FL_DEFAULT_L3;
        return 0;
    default:
        break;
    }
    memset(out, 0, sizeof *out);
    return -1;
}

/* ---- the machine, read once ----------------------------------------------- */
static int cpus_available(void)
{
#ifdef _OPENMP
    return omp_get_num_procs() > 0 ? omp_get_num_procs() : 1; /* as threads.c counts them */
#elif defined(_SC_NPROCESSORS_ONLN)
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
#else
    return 1;
#endif
}

static fl_cpu_info fl_info;

static void read_machine(void)
{
    fl_cpu_info *m = &fl_info;
    memset(m, 0, sizeof *m);
#ifdef FL_HAVE_CPUID
    cpuid_model(m->model, sizeof m->model);
#endif
#if defined(__linux__)
    if (m->model[0] == '\0')
        proc_model(m->model, sizeof m->model);
#endif
    for (m->caches_from = FL_CACHES_CPUID; m->caches_from < FL_CACHES_DEFAULT; m->caches_from++)
        if (fl_cpu_read_caches(m->caches_from, &m->caches) == 0)
            break;
    if (m->caches_from == FL_CACHES_DEFAULT)
        fl_cpu_read_caches(FL_CACHES_DEFAULT, &m->caches);
    m->cpus = cpus_available();
}

#if defined(FL_HAVE_PTHREAD_ONCE)
static pthread_once_t fl_info_once = PTHREAD_ONCE_INIT;
static void machine_once(void) { pthread_once(&fl_info_once, read_machine); }
#elif defined(_WIN32)
static INIT_ONCE fl_info_once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK read_machine_win(PINIT_ONCE once, PVOID arg, PVOID *ctx)
{
    (void)once;
    (void)arg;
    (void)ctx;
    read_machine();
    return TRUE;
}
static void machine_once(void) { InitOnceExecuteOnce(&fl_info_once, read_machine_win, NULL, NULL); }
#else /* no threads to race with */
static void machine_once(void)
{
    static int done = 0;
    if (!done) {
        read_machine();
        done = 1;
    }
}
#endif

void fl_cpu_info_get(fl_cpu_info *out)
{
    machine_once();
    *out = fl_info;
}

const fl_cache_sizes *fl_machine_caches(void)
{
    machine_once();
    return &fl_info.caches;
}

/* ---- the FMA peak -------------------------------------------------------- */
static double fl_seconds(void)
{
#if defined(_WIN32)
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

typedef struct fma_entry {
    const char *name;
    double (*loop_s)(size_t, float *);
    double (*loop_d)(size_t, double *);
} fma_entry;
#define FL_FMA_ENTRY(isa) {#isa, fl_fma_loop_##isa##_s, fl_fma_loop_##isa##_d},
static const fma_entry fma_loops[] = {FL_FOR_EACH_ISA(FL_FMA_ENTRY)};

/* Runs of the FMA loop per thread (the best counts). */
#define FL_FMA_RUNS 8

/* One timed run of a loop: -> GFLOP/s. */
static double time_loop(const fma_entry *e, int fp64, size_t iters)
{
    float sink_s;
    double sink_d;
    const double t0 = fl_seconds();
    const double flops = fp64 ? e->loop_d(iters, &sink_d) : e->loop_s(iters, &sink_s);
    const double dt = fl_seconds() - t0;
    return dt > 0 ? flops / dt * 1e-9 : 0;
}

/* What the threads of one measurement share: each runs the loop `iters`
 * rounds, `runs` times, and keeps its best rate; the threads meet before
 * every run, so that the runs overlap (the rate of all cores busy, which is
 * below one core's when a boost clock falls with the busy cores). */
typedef struct fma_job {
    const fma_entry *e;
    int fp64, runs;
    size_t iters;
    double *best; /* per thread */
    fl_barrier bar;
} fma_job;

static void fma_part(void *ctx, int tid, int nth)
{
    fma_job *j = (fma_job *)ctx;
    size_t round = 0;
    for (int r = 0; r < j->runs; r++) {
        fl_barrier_wait(&j->bar, &round, nth);
        const double g = time_loop(j->e, j->fp64, j->iters);
        if (g > j->best[tid])
            j->best[tid] = g;
    }
}

double fl_fma_peak_gflops(const char *isa, int fp64, int threads, double seconds, int *nth)
{
    const fma_entry *e = NULL;
    const char *name = isa != NULL ? isa : fl_gemm_init();
    size_t iters = 1024;
    double total = 0;
    if (nth != NULL)
        *nth = 0;
    for (size_t i = 0; i < sizeof fma_loops / sizeof fma_loops[0]; i++)
        if (strcmp(name, fma_loops[i].name) == 0)
            e = &fma_loops[i];
    /* absent (no flags, or a CPU that cannot run it), or not measurable */
    if (e == NULL || fl_gemm_impl_by_name(name) == NULL || time_loop(e, fp64, 16) <= 0)
        return -1;
    if (threads < 1)
        threads = 1;
    if (seconds <= 0)
        seconds = 0.005;
    /* rounds for one run of about seconds / FL_FMA_RUNS (at least 0.5 ms),
     * on this thread; many short runs, so that on a shared machine some
     * fall between other processes' time slices */
    while (iters < ((size_t)1 << 40)) {
        const double t0 = fl_seconds();
        time_loop(e, fp64, iters);
        const double dt = fl_seconds() - t0;
        if (dt >= 5e-4 && dt >= seconds / FL_FMA_RUNS) {
            iters = (size_t)((double)iters * (seconds / FL_FMA_RUNS) / dt) + 1;
            break;
        }
        iters *= 2;
    }
    fma_job j = {.e = e, .fp64 = fp64, .runs = FL_FMA_RUNS, .iters = iters, .best = NULL};
    j.best = (double *)calloc((size_t)threads, sizeof(double));
    if (j.best == NULL)
        return -1;
    fl_barrier_init(&j.bar, threads);
    const int ran = fl_team_run(fma_part, &j, threads, 0);
    for (int t = 0; t < ran; t++)
        total += j.best[t];
    free(j.best);
    if (nth != NULL)
        *nth = ran;
    return total;
}
