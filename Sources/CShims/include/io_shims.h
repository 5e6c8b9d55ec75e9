// Linux I/O adapters for the reactor: epoll (its event struct is packed on x86_64, which
// Swift imports awkwardly), eventfd, signalfd, sockets, errno names and resource limits.
#ifndef CSHIMS_IO_H
#define CSHIMS_IO_H


#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

// An unpacked copy of struct epoll_event.
typedef struct {
    uint32_t events;
    uint64_t data;
} shim_epoll_event;

int shim_epoll_create(void);
int shim_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
// Waits like epoll_wait and copies the packed events into `out`.
int shim_epoll_wait(int epfd, shim_epoll_event *out, int max_events, int timeout_ms);

// An anonymous in-memory file with close-on-exec (memfd_create, which glibc declares only
// under _GNU_SOURCE): certificates given inline reach OpenSSL's file loaders as
// /proc/self/fd/N without touching a disk.
static inline int shim_memfd_create(const char *name) { return (int)syscall(SYS_memfd_create, name, 1u /* MFD_CLOEXEC */); }

static inline uint32_t shim_EPOLLIN(void) { return EPOLLIN; }
static inline uint32_t shim_EPOLLOUT(void) { return EPOLLOUT; }
static inline uint32_t shim_EPOLLERR(void) { return EPOLLERR; }
static inline uint32_t shim_EPOLLHUP(void) { return EPOLLHUP; }
static inline uint32_t shim_EPOLLRDHUP(void) { return EPOLLRDHUP; }

int shim_eventfd(void);
// Blocks SIGINT, SIGTERM, SIGHUP (and ignores SIGPIPE) in the calling thread, which every
// thread created later inherits, and returns a non-blocking signalfd for the three.
int shim_signalfd_for_lifecycle(void);
// Reads one signal from the signalfd: its number, 0 if none is pending, -1 on error.
int shim_signalfd_read(int fd);

// Sockets. All of them non-blocking and close-on-exec.
int shim_socket_tcp(int family);
int shim_accept(int fd, struct sockaddr_storage *addr, socklen_t *len);
int shim_connect(int fd, const struct sockaddr_storage *addr, socklen_t len);
int shim_bind(int fd, const struct sockaddr_storage *addr, socklen_t len);
int shim_socket_error(int fd);
int shim_set_int_option(int fd, int level, int name, int value);
int shim_set_nodelay(int fd);
int shim_set_quickack(int fd);
int shim_set_reuseaddr(int fd);
int shim_set_keepalive(int fd, int idle_s, int interval_s, int count);
int shim_local_address(int fd, struct sockaddr_storage *addr, socklen_t *len);
int shim_peer_address(int fd, struct sockaddr_storage *addr, socklen_t *len);

// Address text <-> sockaddr. Returns 0 on success, -1 if `ip` is not a numeric address.
int shim_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *out, socklen_t *len);
// Writes "ip" into buf (no port) and returns the port, or -1.
int shim_sockaddr_to_ip(const struct sockaddr_storage *addr, char *buf, size_t buflen);
int shim_sockaddr_family(const struct sockaddr_storage *addr);

ssize_t shim_readv(int fd, const struct iovec *iov, int count);
ssize_t shim_writev(int fd, const struct iovec *iov, int count);

// errno
int shim_errno(void);
// "EAGAIN", "ECONNREFUSED", ...; "E<number>" for the rare ones.
const char *shim_errno_name(int err);

// Names the calling thread (shows in strace/top).
void shim_set_thread_name(const char *name);

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit or -1.
long shim_raise_nofile_limit(void);
long shim_nofile_limit(void);

uint64_t shim_monotonic_ns(void);
uint64_t shim_realtime_ns(void);
#endif
