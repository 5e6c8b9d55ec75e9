// OpenSSL libcrypto adapters for Reactor/SSH (EVP ciphers, MACs, digests, key exchange, signatures).
#ifndef CSHIMS_CRYPTO_H
#define CSHIMS_CRYPTO_H
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/hmac.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#endif
