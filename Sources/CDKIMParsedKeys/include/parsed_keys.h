#ifndef FANOUT_PARSED_KEYS_H
#define FANOUT_PARSED_KEYS_H

#include <stddef.h>

// Private keys parsed once for libopendkim.
//
// libopendkim parses the PEM text it is given for every message it signs (`dkim_privkey_load`,
// called from `dkim_eom`), and OpenSSL 3's PEM decoder costs about 0.45 ms a key on this kind of
// machine: more than the RSA-2048 signature itself (0.36 ms), and nine tenths of an Ed25519
// signing. This file defines `PEM_read_bio_PrivateKey`, which the dynamic linker binds ahead of
// libcrypto's for every library in the process: when the text read is one remembered here, it
// hands back the key parsed once (one more reference, freed by the caller as before); anything
// else goes to libcrypto's own function untouched (other buffers, files, passwords).

/// Parses the NUL-terminated PEM text `pem` of `length` bytes with libcrypto and remembers the
/// key. Returns 1 when the key is remembered (now or before), 0 when it does not parse or when
/// 64 keys are remembered already (signing then parses it for each message, as libopendkim does).
int fanout_remember_private_key(const char *pem, size_t length);

/// How many times a remembered key was handed out instead of parsed: a test that this file is
/// the one the dynamic linker chose.
unsigned long fanout_remembered_key_uses(void);

#endif
