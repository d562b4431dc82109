/* RFC 3339 timestamps, as the standards Grace speaks write them (the
 * Prometheus and Alertmanager APIs, OTLP's JSON): one parser for every
 * kernel. */
#ifndef GRACE_SDK_RFC3339_H
#define GRACE_SDK_RFC3339_H

#include <stdbool.h>
#include <stdint.h>

/* "2026-12-04T15:22:47Z", with an optional fraction (milliseconds kept,
 * further digits dropped) and Z or a ±hh:mm offset, into ms since the
 * epoch. False for anything else, trailing bytes included. */
bool sdk_rfc3339_parse_ms(const char *s, int64_t *ms);

#endif
