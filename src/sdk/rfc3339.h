/* RFC 3339 timestamps, as the standards Grace speaks write them (the
 * Prometheus and Alertmanager APIs, OTLP's JSON): one parser for every
 * kernel. */
#ifndef GRACE_SDK_RFC3339_H
#define GRACE_SDK_RFC3339_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "2026-12-04T15:22:47Z", with an optional fraction (milliseconds kept,
 * further digits dropped) and Z or a ±hh:mm offset, into ms since the
 * epoch. False for anything else, trailing bytes included. */
bool sdk_rfc3339_parse_ms(const char *s, int64_t *ms);

/* How a time is written back.  Go's encoding/json writes time.Time as
 * RFC3339Nano, trailing zeros of the fraction dropped ("…:54.49Z", no
 * fraction at all on a whole second); that is what Alertmanager's webhooks
 * and Prometheus's API carry.  go-openapi's strfmt.DateTime (Alertmanager's
 * API v2) always writes three digits ("…:54.490Z"). */
enum sdk_rfc3339_style { SDK_RFC3339_GO, SDK_RFC3339_MILLIS };

/* ms since the epoch into buf (40 bytes suffice); ms <= 0 is Go's zero
 * time "0001-01-01T00:00:00Z", which both writers print for "not set".
 * Returns buf. */
const char *sdk_rfc3339_format_ms(int64_t ms, enum sdk_rfc3339_style style, char *buf,
				  size_t len);

#endif
