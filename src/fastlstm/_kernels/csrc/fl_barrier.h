/* A sense-counting spin barrier for the threads that split one recurrence by
   hidden units: each step ends with every thread's slice of h_t published.
   Between two cores a crossing costs about a tenth of a microsecond; a waiter
   spins with `pause` for a few microseconds, then yields its core: on a busy
   machine the partner may have been woken on the waiter's own core, where it
   can only run once the waiter steps aside. */
#ifndef FL_BARRIER_H
#define FL_BARRIER_H
#include <stdatomic.h>
#include <stdint.h>
#include <sched.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FL_PAUSE() _mm_pause()
#else
#define FL_PAUSE() ((void)0)
#endif

/* pause instructions before yielding (a pause is 10-140 cycles, by core) */
#define FL_SPINS 256

typedef struct {
    atomic_long count;        /* arrivals in the current generation */
    atomic_long generation;   /* bumped by the last arrival */
    long n;                   /* participants */
} fl_barrier;

static inline void fl_barrier_init(fl_barrier* b, long n) {
    atomic_store(&b->count, 0);
    atomic_store(&b->generation, 0);
    b->n = n;
}

static inline void fl_barrier_wait(fl_barrier* b) {
    long gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    long spins = 0;
    while (atomic_load_explicit(&b->generation, memory_order_acquire) == gen) {
        if (++spins < FL_SPINS) {
            FL_PAUSE();
        } else {
            sched_yield();
        }
    }
}
#endif
