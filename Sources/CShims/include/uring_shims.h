// liburing adapters for the reactor's io_uring poller (Reactor/Loop/IOURingPoller.swift).
// liburing's submission helpers are inline functions over ring memory and its completion walk
// is a macro, neither of which Swift imports well; these wrap them one call each. No policy here.
#ifndef CSHIMS_URING_H
#define CSHIMS_URING_H
#include <stdint.h>

typedef struct shim_uring shim_uring;

// One completion as the poller reads it.
typedef struct {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
} shim_uring_completion;

// Sets up a ring with `entries` submission slots (and 8x as many completion slots), then proves
// that io_uring_enter works too by a NOP round trip: seccomp profiles may allow one system call
// and not the other. NULL with *error = errno (ENOSYS, EPERM, ENOMEM, ...) when refused;
// *error = EOPNOTSUPP when the kernel lacks IORING_OP_POLL_ADD or multishot poll (before 5.13).
shim_uring *shim_uring_create(unsigned entries, int *error);
void shim_uring_destroy(shim_uring *ring);
// Queues a poll for `events` (EPOLLIN/EPOLLOUT bits) on fd; multishot keeps it armed.
// 0, or -errno when the submission queue stayed full after a flush.
int shim_uring_poll_add(shim_uring *ring, int fd, uint32_t events, uint64_t user_data, int multishot);
// Queues the cancellation of the poll queued with `target`; its own completion carries user_data 0.
int shim_uring_poll_remove(shim_uring *ring, uint64_t target);
// Submits what is queued and waits for one completion at most `timeout_ms` (-1: no limit,
// 0: do not wait). 0 on success or timeout or signal, -errno otherwise.
int shim_uring_submit_and_wait(shim_uring *ring, int timeout_ms);
// Moves up to `max` completions into `out` and consumes them; returns how many.
int shim_uring_reap(shim_uring *ring, shim_uring_completion *out, int max);
// IORING_CQE_F_MORE: a multishot request stays armed after this completion.
uint32_t shim_uring_cqe_more(void);
#endif
