// OpenSSL libssl adapters (macros and variadics Swift cannot call) for Reactor/TLS.
#ifndef CSHIMS_TLS_H
#define CSHIMS_TLS_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/bio.h>
#endif
