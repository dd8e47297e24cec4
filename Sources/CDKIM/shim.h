#ifndef FANOUT_CDKIM_SHIM_H
#define FANOUT_CDKIM_SHIM_H

// libopendkim 2.11 (Debian libopendkim-dev). pkg-config's cflags put /usr/include/opendkim on the
// include path. Swift imports everything the signer uses directly: dkim_options is not variadic
// (it takes a void pointer and a length), and the constants are plain integer macros, so there is
// nothing to wrap.
#include <stdbool.h>
#include <dkim.h>

#endif
