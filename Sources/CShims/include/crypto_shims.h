// OpenSSL libcrypto adapters for Reactor/SSH (EVP ciphers, MACs, digests, key exchange, signatures).
// Thin wrappers over EVP for what Swift cannot call comfortably (OSSL_PARAM arrays, variadic
// keygen, ctrl macros). Every function returns 1 on success and 0 on failure unless noted.
#ifndef CSHIMS_CRYPTO_H
#define CSHIMS_CRYPTO_H
#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/hmac.h>
#include <openssl/ec.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/crypto.h>

// Symmetric ciphers. kind: 1 aes-ctr, 2 aes-gcm, 3 chacha20 (raw, 16-byte IV = counter|nonce).
EVP_CIPHER_CTX *shim_cipher_new(int kind, const uint8_t *key, size_t key_len, const uint8_t *iv, int encrypt);
void shim_cipher_free(EVP_CIPHER_CTX *ctx);
// Streaming update in place (ctr, chacha).
int shim_cipher_update(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len);
// ChaCha20 with a fresh 16-byte IV (counter little-endian | nonce), in place.
int shim_chacha_xor(EVP_CIPHER_CTX *ctx, const uint8_t iv[16], uint8_t *buf, size_t len);
// AES-GCM seal/open in place with a 12-byte IV and aad; tag is 16 bytes.
int shim_gcm_seal(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                  uint8_t *buf, size_t len, uint8_t tag[16]);
int shim_gcm_open(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                  uint8_t *buf, size_t len, const uint8_t tag[16]);

// MACs. HMAC with digest "SHA256"/"SHA512", keyed once; Poly1305 keyed per call.
EVP_MAC_CTX *shim_hmac_new(const char *digest, const uint8_t *key, size_t key_len);
EVP_MAC_CTX *shim_poly1305_new(void);
void shim_mac_free(EVP_MAC_CTX *ctx);
// MAC over seq (big-endian uint32, if with_seq) then data; out must hold the MAC size.
int shim_hmac_seq(EVP_MAC_CTX *ctx, uint32_t seq, const uint8_t *data, size_t len, uint8_t *out, size_t out_len);
int shim_poly1305(EVP_MAC_CTX *ctx, const uint8_t key[32], const uint8_t *data, size_t len, uint8_t tag[16]);

// Digests: kind 1 sha256, 2 sha512, 3 md5, 4 sha384. Returns the digest length or 0.
int shim_digest(int kind, const uint8_t *data, size_t len, uint8_t *out);

// Key agreement. X25519 with raw keys; P-256 with an opaque private key.
int shim_x25519_keygen(uint8_t priv[32], uint8_t pub[32]);
int shim_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32]);
EVP_PKEY *shim_p256_keygen(uint8_t pub[65]);
int shim_p256_derive(EVP_PKEY *priv, const uint8_t *peer, size_t peer_len, uint8_t out[32]);
void shim_pkey_free(EVP_PKEY *key);

// Signature checks over `msg` (host key signatures over the exchange hash).
int shim_ed25519_verify(const uint8_t pub[32], const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t msg_len);
int shim_ed25519_sign(const uint8_t seed[32], const uint8_t *msg, size_t msg_len, uint8_t sig[64]);
int shim_ed25519_public(const uint8_t seed[32], uint8_t pub[32]);
// r and s are unsigned big-endian integers; curve 256 or 384 (digest sha256/sha384).
int shim_ecdsa_verify(int curve, const uint8_t *point, size_t point_len, const uint8_t *r, size_t r_len,
                      const uint8_t *s, size_t s_len, const uint8_t *msg, size_t msg_len);
// digest_kind as in shim_digest (1 sha256, 2 sha512).
int shim_rsa_verify(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, int digest_kind,
                    const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t msg_len);

// ECDSA P-256 private keys (an SSH server's host key): the scalar (32 bytes big-endian) and the
// uncompressed public point (65 bytes) travel as plain bytes; keys are rebuilt per call.
// From the DER of a SEC1 "EC PRIVATE KEY" or a PKCS#8 "PRIVATE KEY"; only P-256 is accepted.
int shim_p256_private_from_der(const uint8_t *der, size_t der_len, uint8_t priv[32], uint8_t pub[65]);
// From an integer of any length: k = b mod (n-1) + 1 (FIPS 186-4 B.4.1 when b has 40 bytes).
int shim_p256_private_from_integer(const uint8_t *b, size_t b_len, uint8_t priv[32], uint8_t pub[65]);
// Signs SHA-256(msg); r and s come out as 32-byte big-endian integers.
int shim_p256_sign(const uint8_t priv[32], const uint8_t pub[65], const uint8_t *msg, size_t msg_len,
                   uint8_t r[32], uint8_t s[32]);

int shim_random(uint8_t *buf, size_t len);
#endif
