// libyaml adapters for Agent/Config.
// The event struct keeps its payload in a union; these helpers flatten the few fields the
// config reader needs so Swift never touches the union layout directly.
#ifndef CSHIMS_YAML_H
#define CSHIMS_YAML_H
#include <yaml.h>
#include <stdlib.h>

/// One parser event, flattened. Pointers stay valid until yaml_event_delete.
typedef struct {
    int type;                  // a yaml_event_type_t value
    size_t line;               // zero-based, from start_mark
    size_t column;             // zero-based, from start_mark
    const unsigned char *value; // scalar bytes (not NUL-terminated for our purposes)
    size_t length;             // scalar length
    int plain;                 // 1 when the scalar was written without quotes
    const unsigned char *anchor; // &anchor on a node, or the alias name for an alias event
    const unsigned char *tag;  // explicit tag, NULL when none
} shim_yaml_event_info;

static inline shim_yaml_event_info shim_yaml_event_info_of(const yaml_event_t *e) {
    shim_yaml_event_info info = {0};
    info.type = (int)e->type;
    info.line = e->start_mark.line;
    info.column = e->start_mark.column;
    switch (e->type) {
    case YAML_SCALAR_EVENT:
        info.value = e->data.scalar.value;
        info.length = e->data.scalar.length;
        info.plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        info.anchor = e->data.scalar.anchor;
        info.tag = e->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        info.anchor = e->data.sequence_start.anchor;
        info.tag = e->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        info.anchor = e->data.mapping_start.anchor;
        info.tag = e->data.mapping_start.tag;
        break;
    case YAML_ALIAS_EVENT:
        info.anchor = e->data.alias.anchor;
        break;
    default:
        break;
    }
    return info;
}

/// A heap parser reading from `bytes` (which must outlive it). NULL when out of memory.
static inline yaml_parser_t *shim_yaml_parser_new(const unsigned char *bytes, size_t length) {
    yaml_parser_t *parser = (yaml_parser_t *)malloc(sizeof(yaml_parser_t));
    if (parser == NULL) return NULL;
    if (!yaml_parser_initialize(parser)) { free(parser); return NULL; }
    yaml_parser_set_input_string(parser, bytes, length);
    return parser;
}

static inline void shim_yaml_parser_free(yaml_parser_t *parser) {
    if (parser == NULL) return;
    yaml_parser_delete(parser);
    free(parser);
}

static inline yaml_event_t *shim_yaml_event_new(void) {
    return (yaml_event_t *)calloc(1, sizeof(yaml_event_t));
}

static inline void shim_yaml_event_free(yaml_event_t *event) { free(event); }

#endif
