/* See pool.h. */
#define _GNU_SOURCE
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    atomic_llong next;         /* next item to claim */
    int64_t n;
    sps_item_fn fn;
    void *arg;                 /* only touched while running a claimed item, i.e. before the caller returns */
    atomic_int refs;           /* threads still holding this job; the last one frees it */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t done;              /* items finished (under lock) */
} job_t;

static void release(job_t *job) {
    if (atomic_fetch_sub(&job->refs, 1) == 1) {
        pthread_mutex_destroy(&job->lock);
        pthread_cond_destroy(&job->cond);
        free(job);
    }
}

static void work(job_t *job) {
    void *scratch = NULL;
    int64_t finished = 0;
    for (;;) {
        int64_t it = atomic_fetch_add(&job->next, 1);
        if (it >= job->n) break;
        job->fn(job->arg, it, &scratch);
        finished++;
    }
    free(scratch);
    if (finished) {
        pthread_mutex_lock(&job->lock);
        job->done += finished;
        if (job->done == job->n) pthread_cond_broadcast(&job->cond);
        pthread_mutex_unlock(&job->lock);
    }
}

/* Helper threads are started once and sleep until a job is posted. A posted job is joined by at most
 * `threads - 1` of them; the caller works on it too and never waits for a helper that has not claimed an item. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake = PTHREAD_COND_INITIALIZER;
static job_t *g_job;            /* the job helpers may join, or NULL */
static int g_job_slots;         /* helpers it still takes */
static uint64_t g_generation;   /* bumped at every post */
static int g_helpers;           /* helper threads started */

static void *helper(void *unused) {
    (void)unused;
    pthread_mutex_lock(&g_lock);
    uint64_t seen = g_generation;
    for (;;) {
        while (g_generation == seen) pthread_cond_wait(&g_wake, &g_lock);
        seen = g_generation;
        job_t *job = g_job;
        if (!job || g_job_slots <= 0) continue;
        g_job_slots--;
        atomic_fetch_add(&job->refs, 1);
        pthread_mutex_unlock(&g_lock);
        work(job);
        release(job);
        pthread_mutex_lock(&g_lock);            /* a job posted meanwhile is seen by the wait loop at once */
    }
    return NULL;
}

/* A forked child has none of the parent's helper threads: start afresh (its first parallel loop starts new ones). */
static void after_fork_in_child(void) {
    pthread_mutex_init(&g_lock, NULL);
    pthread_cond_init(&g_wake, NULL);
    g_job = NULL;
    g_job_slots = 0;
    g_helpers = 0;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void install_fork_handler(void) {
    pthread_atfork(NULL, NULL, after_fork_in_child);
}

static void start_helpers(int wanted) {
    pthread_once(&g_once, install_fork_handler);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (g_helpers < wanted) {
        pthread_t tid;
        if (pthread_create(&tid, &attr, helper, NULL)) break;
        g_helpers++;
    }
    pthread_attr_destroy(&attr);
}

static void run_serial(int64_t n, sps_item_fn fn, void *arg) {
    void *scratch = NULL;
    for (int64_t it = 0; it < n; it++) fn(arg, it, &scratch);
    free(scratch);
}

int sps_parallel_for(int64_t n, int threads, sps_item_fn fn, void *arg) {
    if (n <= 0) return 0;
    if (threads > n) threads = (int)n;
    if (threads <= 1) {
        run_serial(n, fn, arg);
        return 0;
    }
    job_t *job = malloc(sizeof *job);
    if (!job) {
        run_serial(n, fn, arg);
        return -1;
    }
    atomic_init(&job->next, 0);
    atomic_init(&job->refs, 1);
    job->n = n;
    job->fn = fn;
    job->arg = arg;
    job->done = 0;
    pthread_mutex_init(&job->lock, NULL);
    pthread_cond_init(&job->cond, NULL);
    pthread_mutex_lock(&g_lock);
    start_helpers(threads - 1);
    const int rc = g_helpers < threads - 1 ? -1 : 0;
    g_job = job;
    g_job_slots = threads - 1;
    g_generation++;
    pthread_cond_broadcast(&g_wake);
    pthread_mutex_unlock(&g_lock);
    work(job);
    pthread_mutex_lock(&g_lock);             /* no helper joins from now on */
    if (g_job == job) g_job = NULL;
    pthread_mutex_unlock(&g_lock);
    pthread_mutex_lock(&job->lock);
    while (job->done < n) pthread_cond_wait(&job->cond, &job->lock);
    pthread_mutex_unlock(&job->lock);
    release(job);
    return rc;
}

int sps_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
