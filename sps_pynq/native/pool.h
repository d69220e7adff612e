/* Parallel loops for the golden model that never wait for a helper thread that has not started.
 *
 * On a shared machine a helper thread may not be scheduled for milliseconds. With OpenMP the caller then
 * waits at the region's barrier; here the caller claims items itself from an atomic counter and waits only
 * for items a helper actually claimed. A late helper finds nothing left and goes back to sleep. Helper threads
 * are started on first use and kept (a forked child starts its own). */
#ifndef SPS_POOL_H
#define SPS_POOL_H

#include <stdint.h>

/* fn(arg, item, scratch): run one item; *scratch is a per-thread pointer (NULL at first), freed at the end. */
typedef void (*sps_item_fn)(void *arg, int64_t item, void **scratch);

/* Run fn for items 0..n-1 on up to `threads` threads (the caller is one of them). Returns 0, or -1 if a helper
 * thread could not be started (the caller then did every item itself, so the work is still complete). */
int sps_parallel_for(int64_t n, int threads, sps_item_fn fn, void *arg);

/* CPUs this process may run on. */
int sps_cpu_count(void);

#endif
