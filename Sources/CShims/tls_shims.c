#include "include/tls_shims.h"
#include <stdio.h>
#include <string.h>

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl;
    const shim_alpn_list *list = arg;
    unsigned char *selected = NULL;
    unsigned char selected_len = 0;
    if (SSL_select_next_proto(&selected, &selected_len, list->protos, list->length, in, inlen)
        != OPENSSL_NPN_NEGOTIATED) {
        return SSL_TLSEXT_ERR_NOACK;   // no overlap: go on without ALPN
    }
    *out = selected;
    *outlen = selected_len;
    return SSL_TLSEXT_ERR_OK;
}

void shim_SSL_CTX_set_alpn_server(SSL_CTX *ctx, shim_alpn_list *list) {
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, list);
}

unsigned long shim_ERR_take_reason(char *buf, size_t len) {
    unsigned long first = ERR_get_error();
    if (len > 0) buf[0] = 0;
    if (first == 0) return 0;
    const char *reason = ERR_reason_error_string(first);
    if (reason != NULL) {
        snprintf(buf, len, "%s", reason);
    } else {
        ERR_error_string_n(first, buf, len);
    }
    ERR_clear_error();
    return first;
}
