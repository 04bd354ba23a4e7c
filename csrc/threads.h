/* fastlstm thread count: one level of OpenMP parallelism, owned by fastlstm.
 * Without OpenMP (FASTLSTM_NO_OPENMP) everything runs on one thread. */
#ifndef FASTLSTM_THREADS_H
#define FASTLSTM_THREADS_H

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

#ifdef __cplusplus
}
#endif
#endif
