// OpenSSL libssl adapters (macros and variadics Swift cannot call) for Reactor/TLS.
#ifndef CSHIMS_TLS_H
#define CSHIMS_TLS_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>

// SSL_CTX setup that is a macro in OpenSSL 3.
static inline int shim_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
// No renegotiation, no compression; SSL_write may be retried with a moved buffer.
static inline void shim_SSL_CTX_set_reactor_defaults(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}
static inline int shim_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// Memory BIOs.
// An empty read BIO says "retry" (not EOF): more ciphertext may come from the socket.
static inline void shim_BIO_set_mem_eof_return(BIO *bio, int value) { (void)BIO_set_mem_eof_return(bio, value); }

// Server-side ALPN: picks the first of our protocols (wire format, length-prefixed) that the
// client also offers. `protos` must outlive the SSL_CTX; the caller owns it.
typedef struct {
    unsigned char *protos;
    unsigned int length;
} shim_alpn_list;
void shim_SSL_CTX_set_alpn_server(SSL_CTX *ctx, shim_alpn_list *list);

// The reason text of the oldest queued OpenSSL error ("certificate verify failed"), with the
// rest of the queue cleared. Writes "" when the queue is empty. Returns the packed error code.
unsigned long shim_ERR_take_reason(char *buf, size_t len);
#endif
