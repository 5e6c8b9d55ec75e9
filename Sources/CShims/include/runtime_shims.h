// What the agent reports about its own process that /proc does not say: heap use (glibc's
// allocator) and whether io_uring can be used here (kernel, seccomp and limits allowing).
#ifndef CSHIMS_RUNTIME_H
#define CSHIMS_RUNTIME_H
#include <stdint.h>

// Bytes the allocator has handed out and not taken back (mallinfo2: arena in use + mmapped).
uint64_t shim_heap_in_use_bytes(void);
// Sets up a 2-entry io_uring and closes it at once: 0 when that works, else -errno
// (-ENOSYS without kernel support, -EPERM when seccomp or io_uring_disabled forbids it).
int shim_io_uring_probe(void);
#endif
