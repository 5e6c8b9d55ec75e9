// See include/crypto_shims.h. Only EVP calls; no cryptographic logic of our own.
#include "crypto_shims.h"
#include <openssl/param_build.h>
#include <openssl/bn.h>
#include <openssl/decoder.h>
#include <string.h>

EVP_CIPHER_CTX *shim_cipher_new(int kind, const uint8_t *key, size_t key_len, const uint8_t *iv, int encrypt) {
    const EVP_CIPHER *c = NULL;
    if (kind == 1) c = key_len == 16 ? EVP_aes_128_ctr() : key_len == 32 ? EVP_aes_256_ctr() : NULL;
    else if (kind == 2) c = key_len == 16 ? EVP_aes_128_gcm() : key_len == 32 ? EVP_aes_256_gcm() : NULL;
    else if (kind == 3) c = key_len == 32 ? EVP_chacha20() : NULL;
    if (c == NULL) return NULL;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) return NULL;
    if (EVP_CipherInit_ex(ctx, c, NULL, key, kind == 1 ? iv : NULL, encrypt) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void shim_cipher_free(EVP_CIPHER_CTX *ctx) { EVP_CIPHER_CTX_free(ctx); }

int shim_cipher_update(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len) {
    int outl = 0;
    if (len == 0) return 1;
    if (len > INT32_MAX) return 0;
    return EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) == 1 && (size_t)outl == len;
}

int shim_chacha_xor(EVP_CIPHER_CTX *ctx, const uint8_t iv[16], uint8_t *buf, size_t len) {
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1) return 0;
    return shim_cipher_update(ctx, buf, len);
}

static int gcm_run(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                   uint8_t *buf, size_t len) {
    int outl = 0;
    if (len > INT32_MAX) return 0;
    if (EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, -1) != 1) return 0;
    if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) return 0;
    if (len > 0 && EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) != 1) return 0;
    return 1;
}

int shim_gcm_seal(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                  uint8_t *buf, size_t len, uint8_t tag[16]) {
    int outl = 0;
    if (!gcm_run(ctx, iv, aad, aad_len, buf, len)) return 0;
    if (EVP_CipherFinal_ex(ctx, buf + len, &outl) != 1) return 0;
    return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
}

int shim_gcm_open(EVP_CIPHER_CTX *ctx, const uint8_t iv[12], const uint8_t *aad, size_t aad_len,
                  uint8_t *buf, size_t len, const uint8_t tag[16]) {
    int outl = 0;
    if (!gcm_run(ctx, iv, aad, aad_len, buf, len)) return 0;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) != 1) return 0;
    return EVP_CipherFinal_ex(ctx, buf + len, &outl) == 1;
}

EVP_MAC_CTX *shim_hmac_new(const char *digest, const uint8_t *key, size_t key_len) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    if (ctx == NULL) return NULL;
    OSSL_PARAM params[2];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
        EVP_MAC_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

EVP_MAC_CTX *shim_poly1305_new(void) {
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "POLY1305", NULL);
    if (mac == NULL) return NULL;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);
    return ctx;
}

void shim_mac_free(EVP_MAC_CTX *ctx) { EVP_MAC_CTX_free(ctx); }

int shim_hmac_seq(EVP_MAC_CTX *ctx, uint32_t seq, const uint8_t *data, size_t len, uint8_t *out, size_t out_len) {
    uint8_t s[4] = { (uint8_t)(seq >> 24), (uint8_t)(seq >> 16), (uint8_t)(seq >> 8), (uint8_t)seq };
    size_t outl = 0;
    // A NULL key re-initialises HMAC with the key set at creation.
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1) return 0;
    if (EVP_MAC_update(ctx, s, 4) != 1) return 0;
    if (len > 0 && EVP_MAC_update(ctx, data, len) != 1) return 0;
    return EVP_MAC_final(ctx, out, &outl, out_len) == 1 && outl == out_len;
}

int shim_poly1305(EVP_MAC_CTX *ctx, const uint8_t key[32], const uint8_t *data, size_t len, uint8_t tag[16]) {
    size_t outl = 0;
    if (EVP_MAC_init(ctx, key, 32, NULL) != 1) return 0;
    if (len > 0 && EVP_MAC_update(ctx, data, len) != 1) return 0;
    return EVP_MAC_final(ctx, tag, &outl, 16) == 1 && outl == 16;
}

static const EVP_MD *md_of(int kind) {
    switch (kind) {
    case 1: return EVP_sha256();
    case 2: return EVP_sha512();
    case 3: return EVP_md5();
    case 4: return EVP_sha384();
    default: return NULL;
    }
}

int shim_digest(int kind, const uint8_t *data, size_t len, uint8_t *out) {
    const EVP_MD *md = md_of(kind);
    unsigned int outl = 0;
    if (md == NULL || EVP_Digest(data, len, out, &outl, md, NULL) != 1) return 0;
    return (int)outl;
}

int shim_x25519_keygen(uint8_t priv[32], uint8_t pub[32]) {
    if (RAND_bytes(priv, 32) != 1) return 0;
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    if (k == NULL) return 0;
    size_t len = 32;
    int ok = EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == 32;
    EVP_PKEY_free(k);
    return ok;
}

static int derive(EVP_PKEY *mine, EVP_PKEY *peer, uint8_t *out, size_t want) {
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
    size_t len = want;
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
             EVP_PKEY_derive(ctx, out, &len) == 1 && len == want;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

int shim_x25519(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32]) {
    EVP_PKEY *mine = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
    EVP_PKEY *theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    int ok = mine != NULL && theirs != NULL && derive(mine, theirs, out, 32);
    EVP_PKEY_free(mine);
    EVP_PKEY_free(theirs);
    return ok;
}

EVP_PKEY *shim_p256_keygen(uint8_t pub[65]) {
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (k == NULL) return NULL;
    uint8_t *enc = NULL;
    size_t n = EVP_PKEY_get1_encoded_public_key(k, &enc);
    if (n != 65) { OPENSSL_free(enc); EVP_PKEY_free(k); return NULL; }
    memcpy(pub, enc, 65);
    OPENSSL_free(enc);
    return k;
}

static EVP_PKEY *ec_public(const char *group, const uint8_t *point, size_t point_len) {
    OSSL_PARAM params[3];
    EVP_PKEY *key = NULL;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, point_len);
    params[2] = OSSL_PARAM_construct_end();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL) return NULL;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = NULL;
    EVP_PKEY_CTX_free(ctx);
    return key;
}

int shim_p256_derive(EVP_PKEY *priv, const uint8_t *peer, size_t peer_len, uint8_t out[32]) {
    if (peer_len != 65 || peer[0] != 4) return 0;
    EVP_PKEY *theirs = ec_public("P-256", peer, peer_len);
    int ok = theirs != NULL && derive(priv, theirs, out, 32);
    EVP_PKEY_free(theirs);
    return ok;
}

void shim_pkey_free(EVP_PKEY *key) { EVP_PKEY_free(key); }

static int verify(EVP_PKEY *key, const EVP_MD *md, const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t msg_len) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md, NULL, key) == 1 &&
             EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

int shim_ed25519_verify(const uint8_t pub[32], const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t msg_len) {
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    int ok = k != NULL && verify(k, NULL, sig, sig_len, msg, msg_len);
    EVP_PKEY_free(k);
    return ok;
}

int shim_ed25519_sign(const uint8_t seed[32], const uint8_t *msg, size_t msg_len, uint8_t sig[64]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t len = 64;
    int ok = k != NULL && ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(ctx, sig, &len, msg, msg_len) == 1 && len == 64;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    return ok;
}

int shim_ed25519_public(const uint8_t seed[32], uint8_t pub[32]) {
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    size_t len = 32;
    int ok = k != NULL && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == 32;
    EVP_PKEY_free(k);
    return ok;
}

int shim_ecdsa_verify(int curve, const uint8_t *point, size_t point_len, const uint8_t *r, size_t r_len,
                      const uint8_t *s, size_t s_len, const uint8_t *msg, size_t msg_len) {
    EVP_PKEY *k = ec_public(curve == 384 ? "P-384" : "P-256", point, point_len);
    if (k == NULL) return 0;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(r, (int)r_len, NULL);
    BIGNUM *bs = BN_bin2bn(s, (int)s_len, NULL);
    int ok = 0;
    if (sig != NULL && br != NULL && bs != NULL && ECDSA_SIG_set0(sig, br, bs) == 1) {
        br = NULL; bs = NULL;   // owned by sig now
        uint8_t *der = NULL;
        int der_len = i2d_ECDSA_SIG(sig, &der);
        if (der_len > 0) ok = verify(k, curve == 384 ? EVP_sha384() : EVP_sha256(), der, (size_t)der_len, msg, msg_len);
        OPENSSL_free(der);
    }
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(sig);
    EVP_PKEY_free(k);
    return ok;
}

int shim_rsa_verify(const uint8_t *n, size_t n_len, const uint8_t *e, size_t e_len, int digest_kind,
                    const uint8_t *sig, size_t sig_len, const uint8_t *msg, size_t msg_len) {
    BIGNUM *bn = BN_bin2bn(n, (int)n_len, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)e_len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int ok = 0;
    if (bn == NULL || be == NULL || bld == NULL) goto done;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1) goto done;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1) goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (params == NULL || ctx == NULL) goto done;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) goto done;
    if (EVP_PKEY_get_bits(key) < 1024) goto done;
    ok = verify(key, md_of(digest_kind), sig, sig_len, msg, msg_len);
done:
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return ok;
}

int shim_random(uint8_t *buf, size_t len) {
    if (len > INT32_MAX) return 0;
    return RAND_bytes(buf, (int)len) == 1;
}

// Fills priv/pub from an EC key on P-256; 0 for any other curve or shape.
static int p256_export(EVP_PKEY *key, uint8_t priv[32], uint8_t pub[65]) {
    char group[32] = {0};
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1) return 0;
    if (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0) return 0;
    BIGNUM *d = NULL;
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1) return 0;
    int ok = BN_bn2binpad(d, priv, 32) == 32;
    BN_clear_free(d);
    uint8_t *enc = NULL;
    size_t n = ok ? EVP_PKEY_get1_encoded_public_key(key, &enc) : 0;
    if (n != 65) ok = 0; else memcpy(pub, enc, 65);
    OPENSSL_free(enc);
    return ok;
}

int shim_p256_private_from_der(const uint8_t *der, size_t der_len, uint8_t priv[32], uint8_t pub[65]) {
    EVP_PKEY *key = NULL;
    OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&key, "DER", NULL, "EC", EVP_PKEY_KEYPAIR, NULL, NULL);
    if (dctx == NULL) return 0;
    const unsigned char *p = der;
    size_t left = der_len;
    int ok = OSSL_DECODER_from_data(dctx, &p, &left) == 1 && key != NULL && p256_export(key, priv, pub);
    OSSL_DECODER_CTX_free(dctx);
    EVP_PKEY_free(key);
    return ok;
}

// An EVP_PKEY for P-256 from the scalar and its public point.
static EVP_PKEY *p256_keypair(const uint8_t priv[32], const uint8_t pub[65]) {
    BIGNUM *d = BN_bin2bn(priv, 32, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (d == NULL || bld == NULL) goto done;
    if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1) goto done;
    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1) goto done;
    if (OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 65) != 1) goto done;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (params == NULL || ctx == NULL) goto done;
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1) key = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    return key;
}

int shim_p256_private_from_integer(const uint8_t *b, size_t b_len, uint8_t priv[32], uint8_t pub[65]) {
    if (b_len > 1024) return 0;
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    BN_CTX *bctx = BN_CTX_new();
    BIGNUM *k = BN_bin2bn(b, (int)b_len, NULL);
    BIGNUM *nm1 = BN_new();
    EC_POINT *q = NULL;
    int ok = 0;
    if (group == NULL || bctx == NULL || k == NULL || nm1 == NULL) goto done;
    if (BN_copy(nm1, EC_GROUP_get0_order(group)) == NULL || BN_sub_word(nm1, 1) != 1) goto done;
    if (BN_nnmod(k, k, nm1, bctx) != 1 || BN_add_word(k, 1) != 1) goto done;
    q = EC_POINT_new(group);
    if (q == NULL || EC_POINT_mul(group, q, k, NULL, NULL, bctx) != 1) goto done;
    if (EC_POINT_point2oct(group, q, POINT_CONVERSION_UNCOMPRESSED, pub, 65, bctx) != 65) goto done;
    ok = BN_bn2binpad(k, priv, 32) == 32;
done:
    EC_POINT_free(q);
    BN_clear_free(k);
    BN_free(nm1);
    BN_CTX_free(bctx);
    EC_GROUP_free(group);
    return ok;
}

int shim_p256_sign(const uint8_t priv[32], const uint8_t pub[65], const uint8_t *msg, size_t msg_len,
                   uint8_t r[32], uint8_t s[32]) {
    EVP_PKEY *key = p256_keypair(priv, pub);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[80];
    size_t der_len = sizeof der;
    ECDSA_SIG *sig = NULL;
    int ok = 0;
    if (key == NULL || ctx == NULL) goto done;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1) goto done;
    if (EVP_DigestSign(ctx, der, &der_len, msg, msg_len) != 1) goto done;
    const unsigned char *p = der;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL) goto done;
    ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), r, 32) == 32 && BN_bn2binpad(ECDSA_SIG_get0_s(sig), s, 32) == 32;
done:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
}
