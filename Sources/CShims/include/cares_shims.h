// c-ares for the reactor's resolver (Reactor/IO/DNS). Swift imports ares.h as it is: its
// callbacks take @convention(c) closures and its options are a plain struct. Only the library
// initialisation flag, a macro expression Swift does not import, is wrapped here.
#ifndef CSHIMS_CARES_H
#define CSHIMS_CARES_H
#include <ares.h>

static inline int shim_ares_library_init(void) { return ares_library_init(ARES_LIB_INIT_ALL); }
#endif
