/* The schedule of threads that split one recurrence by hidden units.

   Each step's panels are cut into chunks; a chunk of step s is a ticket
   s * chunks + c.  Threads take tickets in order from one atomic counter and
   may start a ticket of step s only once every chunk of step s - 1 is done
   (h_{t-1} complete), then count their chunk done.  There is no fixed set of
   parties: whichever threads are running share the work, a thread that the
   OS has not scheduled yet simply takes fewer tickets, and one thread alone
   finishes everything.  So a busy machine costs speed, never a hang, and a
   late pool thread never stalls the others (as a barrier with a fixed
   number of parties would).  Which thread computes a chunk does not change
   its result.  A waiter spins with `pause` for a few microseconds, then
   yields its core. */
#ifndef FL_GANG_H
#define FL_GANG_H
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
    atomic_llong next;        /* the next ticket to hand out */
    char pad0[64 - sizeof(atomic_llong)];
    atomic_llong done;        /* chunks finished, all steps counted */
    char pad1[64 - sizeof(atomic_llong)];
    long long chunk;          /* panels a ticket covers */
} fl_gang;

static inline void fl_gang_init(fl_gang* g, long long chunk) {
    atomic_store(&g->next, 0);
    atomic_store(&g->done, 0);
    g->chunk = chunk < 1 ? 1 : chunk;
}

/* One round of waiting: a pause while the wait is short, then yield the core. */
static inline void fl_gang_spin(long* spins) {
    if (++*spins < FL_SPINS) {
        FL_PAUSE();
    } else {
        sched_yield();
    }
}

/* The next ticket (a schedule of phases on the gang's counters: the
   compiled training step's chunk shared by hidden slices). */
static inline long long fl_gang_take(fl_gang* g) {
    return atomic_fetch_add_explicit(&g->next, 1, memory_order_relaxed);
}

/* Count one ticket done: its writes are seen by whoever waits for it. */
static inline void fl_gang_finish(fl_gang* g) {
    atomic_fetch_add_explicit(&g->done, 1, memory_order_release);
}

/* Wait until at least `need` chunks are done. */
static inline void fl_gang_wait(fl_gang* g, long long need) {
    long spins = 0;
    while (atomic_load_explicit(&g->done, memory_order_acquire) < need) {
        fl_gang_spin(&spins);
    }
}
#endif
