// libyaml adapters for Agent/Config.
#ifndef CSHIMS_YAML_H
#define CSHIMS_YAML_H
#include <yaml.h>
#endif
