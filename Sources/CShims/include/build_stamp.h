// The build's identity, stamped by scripts/build-release.sh with `-Xcc -DPIPEOPS_BUILD_...="..."`.
// Swift's -D flags carry no values, so the stamp goes through C; a plain build returns "".
#ifndef CSHIMS_BUILD_STAMP_H
#define CSHIMS_BUILD_STAMP_H

const char *shim_build_version(void);
const char *shim_build_commit(void);
const char *shim_build_date(void);

#endif
