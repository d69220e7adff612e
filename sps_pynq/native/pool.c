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

static void *helper(void *p) {
    work((job_t *)p);
    release((job_t *)p);
    return NULL;
}

int sps_parallel_for(int64_t n, int threads, sps_item_fn fn, void *arg) {
    if (n <= 0) return 0;
    if (threads > n) threads = (int)n;
    if (threads <= 1) {
        void *scratch = NULL;
        for (int64_t it = 0; it < n; it++) fn(arg, it, &scratch);
        free(scratch);
        return 0;
    }
    job_t *job = malloc(sizeof *job);
    if (!job) {
        void *scratch = NULL;
        for (int64_t it = 0; it < n; it++) fn(arg, it, &scratch);
        free(scratch);
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
    int rc = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int t = 1; t < threads; t++) {
        pthread_t tid;
        atomic_fetch_add(&job->refs, 1);
        if (pthread_create(&tid, &attr, helper, job)) {
            atomic_fetch_sub(&job->refs, 1);
            rc = -1;
            break;
        }
    }
    pthread_attr_destroy(&attr);
    work(job);
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
