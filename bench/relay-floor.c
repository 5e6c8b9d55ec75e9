// The floor for a tunnel client's CPU per byte on this machine: the least any process can do
// that moves each byte from one loopback TCP socket to another and seals it with AES-128-GCM on
// the way (OpenSSL's EVP, the same library and cipher as the agent). No framing, no event loop,
// no buffering beyond one read: read up to 256 KiB, seal it in 32 KiB pieces (SSH's packet
// size), write it all. The seal goes to a scratch buffer and the plaintext is forwarded, so the
// programs at both ends (iperf3) still speak to each other; sealing in place costs the same.
//
//   relay-floor LISTEN_PORT TARGET_PORT [seal=1]
//
// Listens on 127.0.0.1:LISTEN_PORT and pipes every connection, both ways, to
// 127.0.0.1:TARGET_PORT, in one thread (poll over all pairs). The benches read its CPU seconds
// from /proc, as they do the agent's. Built by bench/common.sh (build_relay_floor).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_PAIRS = 64, READ_SIZE = 256 * 1024, PACKET = 32 * 1024 };

static unsigned char buffer[READ_SIZE];
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

static int write_all(int fd, const unsigned char *p, ssize_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, (size_t)n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= w;
    }
    return 0;
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
    // fds[0] is the listener; then pairs: fds[2k+1] accepted, fds[2k+2] dialled.
    struct pollfd fds[1 + 2 * MAX_PAIRS];
    int count = 1;
    fds[0] = (struct pollfd){.fd = listener, .events = POLLIN};
    for (;;) {
        if (poll(fds, (nfds_t)count, -1) < 0) {
            if (errno == EINTR) continue;
            perror("relay-floor: poll");
            return 1;
        }
        for (int i = 1; i < count; i++) {
            if (!fds[i].revents) continue;
            fds[i].revents = 0;
            int pair = (i - 1) / 2, other = i % 2 ? i + 1 : i - 1;
            ssize_t n = read(fds[i].fd, buffer, READ_SIZE);
            if (n < 0 && errno == EINTR) continue;
            if (n > 0 && sealing)
                for (ssize_t at = 0; at < n; at += PACKET) seal(buffer + at, (int)(n - at < PACKET ? n - at : PACKET));
            if (n <= 0 || write_all(fds[other].fd, buffer, n) < 0) {
                // Either side ending ends the pair: the last pair moves into its slots.
                close(fds[1 + 2 * pair].fd);
                close(fds[2 + 2 * pair].fd);
                fds[1 + 2 * pair] = fds[count - 2];
                fds[2 + 2 * pair] = fds[count - 1];
                count -= 2;
                i = 0;   // the slots changed: scan again (handled slots have no revents left)
            }
        }
        if (fds[0].revents & POLLIN) {
            int accepted = accept(listener, NULL, NULL);
            if (accepted < 0) continue;
            if (count + 2 > 1 + 2 * MAX_PAIRS) {
                close(accepted);
                continue;
            }
            int dialled = socket(AF_INET, SOCK_STREAM, 0);
            address.sin_port = htons((unsigned short)target_port);
            if (connect(dialled, (struct sockaddr *)&address, sizeof address)) {
                close(accepted);
                close(dialled);
                continue;
            }
            fds[count++] = (struct pollfd){.fd = accepted, .events = POLLIN};
            fds[count++] = (struct pollfd){.fd = dialled, .events = POLLIN};
        }
    }
}
