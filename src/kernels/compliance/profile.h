/* Compliance profiles: controls as data. A profile is a JSON object
 * {"title", "version", "controls": [{"id", "title", "description", "check":
 * {"kind", ...}}]}; each check's kind comes from a fixed table (below in
 * profile.c), with the parameters that kind takes. Pure: no I/O. */
#ifndef GRACE_COMPLIANCE_PROFILE_H
#define GRACE_COMPLIANCE_PROFILE_H

#include "kernels/layer.h"

#include "sdk/err.h"

#include <jansson.h>
#include <stdbool.h>

#define CMP_CONTROLS_MAX 200
#define CMP_ID_MAX 64
#define CMP_TITLE_MAX 200
#define CMP_TEXT_MAX 2000
#define CMP_PROFILE_NAME_MAX 64

/* Where a check runs: local ones read files and the configuration (on the
 * worker pool); remote ones ask another kernel (sdk_call). */
enum cmp_where { CMP_LOCAL, CMP_REMOTE };

typedef struct cmp_kind {
	const char *name;
	enum cmp_where where;
	const char *summary;
} cmp_kind;

/* The kind named `name`, or NULL. */
const cmp_kind *cmp_kind_find(const char *name);
/* Every kind, for documentation and errors; *n gets their count. */
const cmp_kind *cmp_kinds(size_t *n);

/* Checks a profile. 0, or SDK_EINVAL with err naming the field
 * ("controls[2].check.kind: unknown check kind \"x\""). */
int cmp_profile_check(const json_t *profile, sdk_err *err);
/* Whether `name` is a valid profile name (and a control id likewise). */
bool cmp_name_valid(const char *name, size_t max);

/* The configuration values a "config" check may read, by key. */
bool cmp_config_key_known(const char *key);

#endif
