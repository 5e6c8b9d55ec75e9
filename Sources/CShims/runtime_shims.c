#define _GNU_SOURCE 1
#include "include/runtime_shims.h"
#include <liburing.h>
#include <malloc.h>

uint64_t shim_heap_in_use_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

int shim_io_uring_probe(void) {
    struct io_uring ring;
    int rc = io_uring_queue_init(2, &ring, 0);
    if (rc < 0) return rc;
    io_uring_queue_exit(&ring);
    return 0;
}
