#include "kernels/compliance/oscal.h"

#include "sdk/rfc3339.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

void cmp_uuid4(char out[37])
{
	unsigned char b[16];
	randombytes_buf(b, sizeof b);
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

int cmp_uuid4_valid(const char *s)
{
	if (strlen(s) != 36)
		return 0;
	for (int i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return 0;
		}
	}
	return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static json_t *time_json(int64_t ms)
{
	char buf[40];
	return json_string(sdk_rfc3339_format_ms(ms, SDK_RFC3339_MILLIS, buf, sizeof buf));
}

static json_t *prop(const char *name, const char *value)
{
	return json_pack("{s:s, s:s, s:s}", "name", name, "ns", CMP_OSCAL_NS, "value", value);
}

static const char *str(const json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s && *s ? s : def;
}

/* The finding's objective status: OSCAL has satisfied and not-satisfied,
 * with a reason (pass, fail, other). NULL: no finding (not_applicable and
 * info are observations only). */
static const char *state_of(const char *result, const char **reason)
{
	static const struct {
		const char *result, *state, *reason;
	} table[] = {
		{ "pass", "satisfied", "pass" },
		{ "fail", "not-satisfied", "fail" },
		{ "waived", "not-satisfied", "other" },
		{ "error", "not-satisfied", "other" },
	};
	for (size_t i = 0; i < sizeof table / sizeof *table; i++)
		if (!strcmp(table[i].result, result)) {
			*reason = table[i].reason;
			return table[i].state;
		}
	return NULL;
}

json_t *cmp_oscal_build(const json_t *scan)
{
	int64_t started = json_integer_value(json_object_get(scan, "started_ms"));
	int64_t ended = json_integer_value(json_object_get(scan, "ended_ms"));
	const char *profile = str(scan, "profile", "default");
	json_t *observations = json_array(), *findings = json_array(), *ids = json_array();
	json_t *results = json_object_get(scan, "results");
	size_t i;
	json_t *r;
	json_array_foreach(results, i, r) {
		const char *cid = str(r, "control_id", "unknown");
		const char *result = str(r, "result", "error");
		json_array_append_new(ids, json_pack("{s:s}", "control-id", cid));
		json_t *evidence = json_array();
		size_t j;
		json_t *e;
		json_array_foreach(json_object_get(r, "evidence"), j, e) {
			char desc[1024];
			snprintf(desc, sizeof desc, "Read %s; SHA-256 %s", str(e, "read", "?"),
				 str(e, "sha256", "?"));
			json_array_append_new(evidence,
					      json_pack("{s:s, s:[o]}", "description", desc, "props",
							prop("sha256", str(e, "sha256", "none"))));
		}
		json_t *obs = json_pack("{s:s, s:s, s:s, s:[s], s:[o], s:o}", "uuid",
					str(r, "observation_uuid", ""), "title", str(r, "title", cid),
					"description", str(r, "message", result), "methods", "TEST",
					"props", prop("result", result), "collected", time_json(ended));
		if (json_array_size(evidence))
			json_object_set_new(obs, "relevant-evidence", evidence);
		else
			json_decref(evidence);
		json_array_append_new(observations, obs);
		const char *reason;
		const char *state = state_of(result, &reason);
		if (!state)
			continue;
		json_t *target = json_pack("{s:s, s:s, s:{s:s, s:s}}", "type", "objective-id",
					   "target-id", cid, "status", "state", state, "reason", reason);
		json_t *f = json_pack("{s:s, s:s, s:s, s:[o], s:o, s:[{s:s}]}", "uuid",
				      str(r, "finding_uuid", ""), "title", str(r, "title", cid),
				      "description", str(r, "message", result), "props",
				      prop("result", result), "target", target,
				      "related-observations", "observation-uuid",
				      str(r, "observation_uuid", ""));
		if (!strcmp(result, "waived")) {
			char why[600];
			snprintf(why, sizeof why, "Waived (waiver %lld): the check failed",
				 (long long)json_integer_value(json_object_get(r, "waiver")));
			json_object_set_new(json_object_get(target, "status"), "remarks",
					    json_string(why));
		}
		if (f)
			json_array_append_new(findings, f);
	}
	json_t *rprops = json_array();
	json_t *li = json_object_get(scan, "log_index");
	if (json_is_integer(li)) {
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(li));
		json_array_append_new(rprops, prop("immutable-log-index", buf));
		json_array_append_new(rprops, prop("immutable-log-leaf-hash", str(scan, "leaf_hash", "")));
	}
	char scan_id[32];
	snprintf(scan_id, sizeof scan_id, "%lld", (long long)json_integer_value(json_object_get(scan, "id")));
	json_array_append_new(rprops, prop("scan-id", scan_id));
	json_array_append_new(rprops, prop("profile", profile));
	char title[200], desc[400], href[200];
	snprintf(title, sizeof title, "Grace compliance scan %s of profile %s", scan_id, profile);
	snprintf(desc, sizeof desc,
		 "Automated checks of the controls of the profile \"%s\" (%s), run by Grace's "
		 "compliance kernel.",
		 profile, str(scan, "profile_title", profile));
	snprintf(href, sizeof href, "urn:grace:compliance:profile:%s", profile);
	json_t *result = json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:{s:[{s:o}]}, s:o}", "uuid",
				   str(scan, "uuid", ""), "title", title, "description", desc, "start",
				   time_json(started), "end", time_json(ended), "props", rprops,
				   "reviewed-controls", "control-selections", "include-controls", ids,
				   "observations", observations);
	if (json_array_size(findings))
		json_object_set_new(result, "findings", findings);
	else
		json_decref(findings);
	char mtitle[200];
	snprintf(mtitle, sizeof mtitle, "Grace compliance assessment results: %s", profile);
	return json_pack("{s:{s:s, s:{s:s, s:o, s:s, s:s}, s:{s:s}, s:[o]}}", "assessment-results",
			 "uuid", str(scan, "report_uuid", ""), "metadata", "title", mtitle,
			 "last-modified", time_json(ended), "version",
			 str(scan, "profile_version", "1"), "oscal-version", CMP_OSCAL_VERSION,
			 "import-ap", "href", href, "results", result);
}
