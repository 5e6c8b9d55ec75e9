#include "build_stamp.h"

#ifndef PIPEOPS_BUILD_VERSION
#define PIPEOPS_BUILD_VERSION ""
#endif
#ifndef PIPEOPS_BUILD_COMMIT
#define PIPEOPS_BUILD_COMMIT ""
#endif
#ifndef PIPEOPS_BUILD_DATE
#define PIPEOPS_BUILD_DATE ""
#endif

const char *shim_build_version(void) { return PIPEOPS_BUILD_VERSION; }
const char *shim_build_commit(void) { return PIPEOPS_BUILD_COMMIT; }
const char *shim_build_date(void) { return PIPEOPS_BUILD_DATE; }
