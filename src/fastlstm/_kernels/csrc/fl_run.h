/* The schedule of a run of mini-batches on whichever threads join it.

   Each mini-batch m of the run is a row of tickets in four phases: one per
   row chunk of the batch (forward, loss, backward and partial gradients of
   its rows; a batch of one chunk shared by hidden slices: one per thread
   that may share it, each taking the chunk's own tickets while any are left); the step's slices of the reduction (the partials summed in
   chunk order, each piece's squared norm); its slices of the optimizer
   update (the checks, clipping, Adam over a share of the flat buffers); and
   two to finish (the checks' outcome kept, an update undone, the next
   batch's forward and backward weights packed).  Tickets are numbered
   across the run and taken in order from one counter (fl_gang.h); a ticket
   starts once every ticket of the phases before its own is done, so a chunk
   of batch m waits for the whole step of batch m - 1 (the weights it reads
   are updated and packed).  As in fl_gang.h there is no fixed set of
   parties: one thread alone runs everything, a thread the OS starts late
   takes fewer tickets, so a busy machine costs speed and never a hang; and
   which thread runs a ticket changes nothing in its result.

   A step may end the run early (a value that is not finite, or the run's
   time is up): it publishes the number of batches the run keeps, before it
   counts its ticket done; a thread waiting on a later ticket sees it and
   leaves. */
#ifndef FL_RUN_H
#define FL_RUN_H
#include "fl_gang.h"

typedef struct {
    fl_gang g;                /* the tickets: next to hand out, done */
    atomic_llong stop;        /* batches this run keeps (the first ones) */
    char pad[64 - sizeof(atomic_llong)];
} fl_run_sync;

static inline void fl_run_init(fl_run_sync* s, long long batches) {
    fl_gang_init(&s->g, 1);
    atomic_store(&s->stop, batches);
}

/* The next ticket. */
static inline long long fl_run_take(fl_run_sync* s) {
    return atomic_fetch_add_explicit(&s->g.next, 1, memory_order_relaxed);
}

/* Count one ticket done: its writes are seen by whoever waits for it. */
static inline void fl_run_finish(fl_run_sync* s) {
    atomic_fetch_add_explicit(&s->g.done, 1, memory_order_release);
}

/* Keep only the first `batches` batches of the run (before fl_run_finish). */
static inline void fl_run_stop(fl_run_sync* s, long long batches) {
    atomic_store_explicit(&s->stop, batches, memory_order_release);
}

/* The batches the run keeps. */
static inline long long fl_run_kept(fl_run_sync* s) {
    return atomic_load_explicit(&s->stop, memory_order_acquire);
}

/* A row chunk's claim: the stamp of the batch whose ticket runs it.  A
   thread holding a chunk ticket claims the chunk it prefers (the ones it ran
   before: their buffers are in its cache), else any chunk still free; as
   many tickets as chunks, so each ticket finds one. */
typedef struct {
    atomic_llong stamp;
} fl_claim;

static inline void fl_claim_init(fl_claim* c) {
    atomic_store(&c->stamp, -1);
}

/* 1 if this call claimed the chunk for `stamp` (nobody had), else 0. */
static inline int fl_claim_take(fl_claim* c, long long stamp) {
    long long cur = atomic_load_explicit(&c->stamp, memory_order_relaxed);
    while (cur != stamp) {
        if (atomic_compare_exchange_weak_explicit(&c->stamp, &cur, stamp, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            return 1;
        }
    }
    return 0;
}

/* A number no earlier call returned (the stamps of a run's calls). */
static inline long long fl_run_serial(void) {
    static atomic_llong serial;
    return atomic_fetch_add(&serial, 1) + 1;
}

/* Wait until `need` tickets are done; 1 to go on with a ticket of `batch`,
   0 if the run stopped before that batch. */
static inline int fl_run_wait(fl_run_sync* s, long long need, long long batch) {
    long spins = 0;
    for (;;) {
        if (atomic_load_explicit(&s->g.done, memory_order_acquire) >= need) {
            return fl_run_kept(s) > batch;
        }
        if (fl_run_kept(s) <= batch) {
            return 0;
        }
        fl_gang_spin(&spins);
    }
}
#endif
