// The floor for a tunnel client's CPU per byte on this machine: the least any process can do
// that moves each byte from one loopback TCP socket to another and seals it with AES-128-GCM on
// the way (OpenSSL's EVP, the same library and cipher as the agent). No framing, no event loop,
// no buffering beyond one read: read up to 256 KiB, seal it in 32 KiB pieces (SSH's packet
// size), write it on; a direction whose bytes wait is not read until they are written. The
// seal goes to a scratch buffer and the plaintext is forwarded, so the programs at both ends
// (iperf3) still speak to each other; sealing in place costs the same.
//
//   relay-floor LISTEN_PORT TARGET_PORT [seal=1]
//
// Listens on 127.0.0.1:LISTEN_PORT and pipes every connection, both ways, to
// 127.0.0.1:TARGET_PORT, in one thread (poll over all pairs, non-blocking sockets). The benches
// read its CPU seconds from /proc, as they do the agent's. Built by bench/common.sh (build_relay_floor).
#define _GNU_SOURCE   // accept4
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_PAIRS = 64, READ_SIZE = 256 * 1024, PACKET = 32 * 1024 };

// One direction of a pair: bytes read from `from` and not yet all written to `to`. While some
// wait, `from` is not read (the relay's backpressure); the other direction goes on meanwhile.
struct half {
    int from, to;
    unsigned char *buffer;
    ssize_t offset, length;
};

static struct half halves[2 * MAX_PAIRS];
static int pairs;
static unsigned char sealed[PACKET + 16];
static EVP_CIPHER_CTX *cipher;
static unsigned char nonce[12];

static void seal(const unsigned char *p, int n) {
    int out;
    unsigned char tag[16];
    EVP_EncryptInit_ex(cipher, NULL, NULL, NULL, nonce);
    EVP_EncryptUpdate(cipher, sealed, &out, p, n);
    EVP_EncryptFinal_ex(cipher, sealed + out, &out);
    EVP_CIPHER_CTX_ctrl(cipher, EVP_CTRL_GCM_GET_TAG, 16, tag);
    for (int i = 11; i >= 0 && ++nonce[i] == 0; i--) {}
}

// Writes what `h` holds; -1 when the destination failed.
static int drain(struct half *h) {
    while (h->length > h->offset) {
        ssize_t w = write(h->to, h->buffer + h->offset, (size_t)(h->length - h->offset));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return 0;
        if (w <= 0) return -1;
        h->offset += w;
    }
    h->offset = h->length = 0;
    return 0;
}

// Reads once into `h` and writes it on; -1 at the end of the stream or on an error.
static int pump(struct half *h, int sealing) {
    ssize_t n = read(h->from, h->buffer, READ_SIZE);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 0;
    if (n <= 0) return -1;
    if (sealing)
        for (ssize_t at = 0; at < n; at += PACKET) seal(h->buffer + at, (int)(n - at < PACKET ? n - at : PACKET));
    h->offset = 0;
    h->length = n;
    return drain(h);
}

static void close_pair(int pair) {
    close(halves[2 * pair].from);
    close(halves[2 * pair].to);
    free(halves[2 * pair].buffer);
    free(halves[2 * pair + 1].buffer);
    pairs--;
    halves[2 * pair] = halves[2 * pairs];
    halves[2 * pair + 1] = halves[2 * pairs + 1];
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: relay-floor LISTEN_PORT TARGET_PORT [seal=1]\n");
        return 2;
    }
    int listen_port = atoi(argv[1]), target_port = atoi(argv[2]);
    int sealing = argc > 3 ? atoi(argv[3]) : 1;
    signal(SIGPIPE, SIG_IGN);   // a peer that closes first ends its pair, not the relay
    static const unsigned char key[16];
    cipher = EVP_CIPHER_CTX_new();
    if (!cipher || !EVP_EncryptInit_ex(cipher, EVP_aes_128_gcm(), NULL, key, NULL)) return 1;

    int listener = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    address.sin_port = htons((unsigned short)listen_port);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 128)) {
        perror("relay-floor: listen");
        return 1;
    }
    // fds[0] is the listener, then two per pair: the accepted socket and the dialled one, each
    // polled for reading while its outgoing half is empty and for writing while its incoming
    // half waits.
    struct pollfd fds[1 + 2 * MAX_PAIRS];
    for (;;) {
        fds[0] = (struct pollfd){.fd = listener, .events = POLLIN};
        for (int k = 0; k < 2 * pairs; k++) {
            struct half *out = &halves[k], *in = &halves[k ^ 1];
            fds[1 + k] = (struct pollfd){.fd = out->from,
                                         .events = (short)((out->length ? 0 : POLLIN) | (in->length ? POLLOUT : 0))};
        }
        if (poll(fds, (nfds_t)(1 + 2 * pairs), -1) < 0) {
            if (errno == EINTR) continue;
            perror("relay-floor: poll");
            return 1;
        }
        for (int k = 2 * pairs - 1; k >= 0; k--) {   // backwards: closing a pair moves the last one here
            short revents = fds[1 + k].revents;
            if (!revents) continue;
            struct half *out = &halves[k], *in = &halves[k ^ 1];
            int failed = 0;
            if (in->length && (revents & (POLLOUT | POLLERR | POLLHUP))) failed |= drain(in);
            if (!failed && !out->length && (revents & (POLLIN | POLLERR | POLLHUP))) failed |= pump(out, sealing);
            if (failed) {
                int pair = k / 2;
                fds[1 + 2 * pair].revents = fds[2 + 2 * pair].revents = 0;
                close_pair(pair);
                k = 2 * pair;   // the pair moved here came from the end: already handled this round
            }
        }
        if (fds[0].revents & POLLIN) {
            int accepted = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
            if (accepted < 0) continue;
            int dialled = socket(AF_INET, SOCK_STREAM, 0);
            address.sin_port = htons((unsigned short)target_port);
            // Dialled blocking (loopback: at once), then non-blocking like the accepted one.
            if (pairs == MAX_PAIRS || connect(dialled, (struct sockaddr *)&address, sizeof address)) {
                close(accepted);
                close(dialled);
                continue;
            }
            fcntl(dialled, F_SETFL, O_NONBLOCK);
            halves[2 * pairs] = (struct half){.from = accepted, .to = dialled, .buffer = malloc(READ_SIZE)};
            halves[2 * pairs + 1] = (struct half){.from = dialled, .to = accepted, .buffer = malloc(READ_SIZE)};
            if (!halves[2 * pairs].buffer || !halves[2 * pairs + 1].buffer) return 1;
            pairs++;
        }
    }
}
