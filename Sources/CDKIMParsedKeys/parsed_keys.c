#define _GNU_SOURCE
#include "parsed_keys.h"

#include <dlfcn.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef EVP_PKEY *(*pem_read_private_key)(BIO *, EVP_PKEY **, pem_password_cb *, void *);

struct remembered_key {
    char *text;
    size_t length;
    EVP_PKEY *key;
};

enum { max_keys = 64 };
static struct remembered_key keys[max_keys];
static size_t key_count;
static unsigned long uses;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pem_read_private_key libcrypto_read;

static void find_libcrypto_read(void) {
    libcrypto_read = (pem_read_private_key)dlsym(RTLD_NEXT, "PEM_read_bio_PrivateKey");
}

static EVP_PKEY *parse(BIO *bio, EVP_PKEY **out, pem_password_cb *callback, void *user) {
    pthread_once(&once, find_libcrypto_read);
    if (libcrypto_read == NULL) return NULL;
    return libcrypto_read(bio, out, callback, user);
}

// Called with `lock` held.
static EVP_PKEY *remembered(const char *text, size_t length) {
    for (size_t index = 0; index < key_count; index++) {
        if (keys[index].length == length && memcmp(keys[index].text, text, length) == 0) return keys[index].key;
    }
    return NULL;
}

int fanout_remember_private_key(const char *pem, size_t length) {
    pthread_mutex_lock(&lock);
    int known = remembered(pem, length) != NULL;
    pthread_mutex_unlock(&lock);
    if (known) return 1;
    BIO *bio = BIO_new_mem_buf(pem, (int)length);
    if (bio == NULL) return 0;
    EVP_PKEY *key = parse(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (key == NULL) return 0;
    char *text = malloc(length);
    if (text == NULL) {
        EVP_PKEY_free(key);
        return 0;
    }
    memcpy(text, pem, length);
    pthread_mutex_lock(&lock);
    int stored = 1;
    if (remembered(pem, length) == NULL) {
        if (key_count < max_keys) {
            keys[key_count++] = (struct remembered_key){text, length, key};
            text = NULL;
            key = NULL;
        } else {
            stored = 0;
        }
    }
    pthread_mutex_unlock(&lock);
    if (text != NULL) {
        OPENSSL_cleanse(text, length);
        free(text);
    }
    EVP_PKEY_free(key);
    return stored;
}

unsigned long fanout_remembered_key_uses(void) {
    pthread_mutex_lock(&lock);
    unsigned long count = uses;
    pthread_mutex_unlock(&lock);
    return count;
}

EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bio, EVP_PKEY **out, pem_password_cb *callback, void *user) {
    if (out == NULL && callback == NULL && user == NULL && bio != NULL && BIO_method_type(bio) == BIO_TYPE_MEM) {
        char *data = NULL;
        long available = BIO_get_mem_data(bio, &data);
        if (available > 0 && data != NULL) {
            pthread_mutex_lock(&lock);
            EVP_PKEY *key = remembered(data, (size_t)available);
            if (key != NULL) {
                EVP_PKEY_up_ref(key);
                uses++;
            }
            pthread_mutex_unlock(&lock);
            if (key != NULL) {
                // Consume what was read, as libcrypto's function would.
                char scratch[1024];
                while (BIO_read(bio, scratch, sizeof scratch) > 0) {}
                OPENSSL_cleanse(scratch, sizeof scratch);
                return key;
            }
        }
    }
    return parse(bio, out, callback, user);
}
