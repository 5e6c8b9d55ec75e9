// CShims: the C that Swift cannot reach directly (packed structs, macros, variadics).
// Thin on purpose: no logic here, only adapters. One header per area.
#ifndef CSHIMS_H
#define CSHIMS_H

#include "io_shims.h"
#include "tls_shims.h"
#include "crypto_shims.h"
#include "yaml_shims.h"
#include "build_stamp.h"
#include "runtime_shims.h"
#include "uring_shims.h"
#include "cares_shims.h"

#endif
