#define _GNU_SOURCE 1
#include "include/io_shims.h"
#include <limits.h>
#include <stdio.h>

int shim_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int shim_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int shim_epoll_wait(int epfd, shim_epoll_event *out, int max_events, int timeout_ms) {
    struct epoll_event evs[256];
    if (max_events > 256) max_events = 256;
    int n = epoll_wait(epfd, evs, max_events, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int shim_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int shim_signalfd_for_lifecycle(void) {
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int shim_signalfd_read(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
}

int shim_socket_tcp(int family) {
    return socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
}

int shim_accept(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return accept4(fd, (struct sockaddr *)addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int shim_connect(int fd, const struct sockaddr_storage *addr, socklen_t len) {
    return connect(fd, (const struct sockaddr *)addr, len);
}

int shim_bind(int fd, const struct sockaddr_storage *addr, socklen_t len) {
    return bind(fd, (const struct sockaddr *)addr, len);
}

int shim_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

int shim_set_int_option(int fd, int level, int name, int value) {
    return setsockopt(fd, level, name, &value, sizeof value);
}

int shim_set_nodelay(int fd) { return shim_set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1); }
int shim_set_quickack(int fd) { return shim_set_int_option(fd, IPPROTO_TCP, TCP_QUICKACK, 1); }
int shim_set_reuseaddr(int fd) { return shim_set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1); }

int shim_set_keepalive(int fd, int idle_s, int interval_s, int count) {
    if (shim_set_int_option(fd, SOL_SOCKET, SO_KEEPALIVE, 1) != 0) return -1;
    if (shim_set_int_option(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s) != 0) return -1;
    if (shim_set_int_option(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s) != 0) return -1;
    return shim_set_int_option(fd, IPPROTO_TCP, TCP_KEEPCNT, count);
}

int shim_local_address(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return getsockname(fd, (struct sockaddr *)addr, len);
}

int shim_peer_address(int fd, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return getpeername(fd, (struct sockaddr *)addr, len);
}

int shim_sockaddr_from_ip(const char *ip, uint16_t port, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof *v4;
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof *v6;
        return 0;
    }
    return -1;
}

int shim_sockaddr_to_ip(const struct sockaddr_storage *addr, char *buf, size_t buflen) {
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)addr;
        if (!inet_ntop(AF_INET, &v4->sin_addr, buf, (socklen_t)buflen)) return -1;
        return ntohs(v4->sin_port);
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)addr;
        if (!inet_ntop(AF_INET6, &v6->sin6_addr, buf, (socklen_t)buflen)) return -1;
        return ntohs(v6->sin6_port);
    }
    return -1;
}

int shim_sockaddr_family(const struct sockaddr_storage *addr) { return addr->ss_family; }

ssize_t shim_readv(int fd, const struct iovec *iov, int count) { return readv(fd, iov, count); }
ssize_t shim_writev(int fd, const struct iovec *iov, int count) { return writev(fd, iov, count); }

int shim_errno(void) { return errno; }

const char *shim_errno_name(int err) {
    switch (err) {
#define N(e) case e: return #e;
    N(EAGAIN) N(EINTR) N(EINPROGRESS) N(ECONNREFUSED) N(ECONNRESET) N(ECONNABORTED)
    N(EPIPE) N(ETIMEDOUT) N(EHOSTUNREACH) N(ENETUNREACH) N(EADDRINUSE) N(EADDRNOTAVAIL)
    N(EMFILE) N(ENFILE) N(ENOBUFS) N(ENOMEM) N(EBADF) N(EINVAL) N(ENOTCONN) N(EACCES)
    N(EPERM) N(ENOENT) N(EEXIST) N(EISCONN) N(EALREADY) N(EAFNOSUPPORT) N(ENOTSOCK)
    N(EPROTO) N(EIO) N(ENOSPC) N(ENOSYS) N(EOPNOTSUPP) N(EBUSY) N(ECANCELED)
#undef N
    default: {
        static __thread char buf[16];
        snprintf(buf, sizeof buf, "E%d", err);
        return buf;
    }
    }
}

long shim_raise_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    }
    return (long)rl.rlim_cur;
}

long shim_nofile_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    return (long)rl.rlim_cur;
}

uint64_t shim_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t shim_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#include <pthread.h>
void shim_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }
