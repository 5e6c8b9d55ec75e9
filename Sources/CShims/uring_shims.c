#include "include/uring_shims.h"
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct shim_uring {
    struct io_uring ring;
};

// Multishot poll (kernel 5.13+): armed on a readable eventfd it completes with IORING_CQE_F_MORE;
// older kernels answer -EINVAL. The poll is cancelled again before the ring is used.
static int multishot_poll_works(shim_uring *r) {
    int efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return 0;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_poll_multishot(sqe, efd, POLLIN);
    io_uring_sqe_set_data64(sqe, 1);
    int works = 0;
    struct io_uring_cqe *cqe;
    if (io_uring_submit_and_wait(&r->ring, 1) >= 0 && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
        works = cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE);
        io_uring_cqe_seen(&r->ring, cqe);
    }
    if (works) {
        sqe = io_uring_get_sqe(&r->ring);
        io_uring_prep_poll_remove(sqe, 1);
        io_uring_sqe_set_data64(sqe, 0);
        io_uring_submit_and_wait(&r->ring, 2);
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&r->ring, head, cqe) seen++;
        io_uring_cq_advance(&r->ring, seen);
    }
    close(efd);
    return works;
}

shim_uring *shim_uring_create(unsigned entries, int *error) {
    shim_uring *r = calloc(1, sizeof *r);
    if (!r) { *error = ENOMEM; return NULL; }
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_COOP_TASKRUN;
    p.cq_entries = entries * 8;
    int rc = io_uring_queue_init_params(entries, &r->ring, &p);
    if (rc == -EINVAL) {   // kernels before 5.19 refuse COOP_TASKRUN
        p = (struct io_uring_params){0};
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 8;
        rc = io_uring_queue_init_params(entries, &r->ring, &p);
    }
    if (rc < 0) { free(r); *error = -rc; return NULL; }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->ring);
    int has_poll = probe && io_uring_opcode_supported(probe, IORING_OP_POLL_ADD)
                         && io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
    if (probe) io_uring_free_probe(probe);
    if (!has_poll) { io_uring_queue_exit(&r->ring); free(r); *error = EOPNOTSUPP; return NULL; }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 0);
    rc = io_uring_submit_and_wait(&r->ring, 1);
    if (rc < 0) { io_uring_queue_exit(&r->ring); free(r); *error = -rc; return NULL; }
    struct io_uring_cqe *cqe;
    if (io_uring_peek_cqe(&r->ring, &cqe) == 0) io_uring_cqe_seen(&r->ring, cqe);
    if (!multishot_poll_works(r)) { io_uring_queue_exit(&r->ring); free(r); *error = EOPNOTSUPP; return NULL; }
    return r;
}

void shim_uring_destroy(shim_uring *r) {
    if (!r) return;
    io_uring_queue_exit(&r->ring);
    free(r);
}

// A free submission slot; when the queue is full, what is queued goes to the kernel first.
static struct io_uring_sqe *next_sqe(shim_uring *r, int *error) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (sqe) return sqe;
    int rc = io_uring_submit(&r->ring);
    if (rc < 0) { *error = rc; return NULL; }
    sqe = io_uring_get_sqe(&r->ring);
    if (!sqe) *error = -EBUSY;
    return sqe;
}

int shim_uring_poll_add(shim_uring *r, int fd, uint32_t events, uint64_t user_data, int multishot) {
    int error = 0;
    struct io_uring_sqe *sqe = next_sqe(r, &error);
    if (!sqe) return error;
    if (multishot) io_uring_prep_poll_multishot(sqe, fd, events);
    else io_uring_prep_poll_add(sqe, fd, events);
    io_uring_sqe_set_data64(sqe, user_data);
    return 0;
}

int shim_uring_poll_remove(shim_uring *r, uint64_t target) {
    int error = 0;
    struct io_uring_sqe *sqe = next_sqe(r, &error);
    if (!sqe) return error;
    io_uring_prep_poll_remove(sqe, target);
    io_uring_sqe_set_data64(sqe, 0);
    return 0;
}

int shim_uring_submit_and_wait(shim_uring *r, int timeout_ms) {
    int rc;
    if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&r->ring, 1);
    } else if (timeout_ms == 0) {
        rc = io_uring_submit_and_get_events(&r->ring);
    } else {
        struct __kernel_timespec ts = { .tv_sec = timeout_ms / 1000, .tv_nsec = (long long)(timeout_ms % 1000) * 1000000 };
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
    }
    if (rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) return 0;
    return rc < 0 ? rc : 0;
}

int shim_uring_reap(shim_uring *r, shim_uring_completion *out, int max) {
    struct io_uring_cqe *cqe;
    unsigned head;
    int n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe) {
        if (n == max) break;
        out[n].user_data = io_uring_cqe_get_data64(cqe);
        out[n].res = cqe->res;
        out[n].flags = cqe->flags;
        n++;
    }
    io_uring_cq_advance(&r->ring, (unsigned)n);
    return n;
}

uint32_t shim_uring_cqe_more(void) { return IORING_CQE_F_MORE; }
