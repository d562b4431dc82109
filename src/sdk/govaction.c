#include "sdk/govaction.h"

#include <string.h>

#define A(n, s, ...) { .name = n, .summary = s, .params = { __VA_ARGS__ } }
static const sdk_gov_action actions[] = {
	A("kernel.stop", "stop a kernel (POST /kernel-ports/NAME/stop)", "kernel"),
	A("port.clear_force", "clear_port with force (POST /network-healer/heal)", "kernel"),
	A("user.delete", "delete a user (DELETE /auth/users/NAME)", "name"),
	A("user.role", "change a user's role (only through a change request)", "name", "role"),
	A("key.rotate", "rotate a key (crypto: POST /keys/NAME/rotate)", "name"),
	A("key.delete", "delete a key (crypto: DELETE /keys/NAME)", "name"),
	A("policy.set", "change a policy set (policy: PUT or DELETE /policy-sets/NAME)", "name",
	  "method"),
	A("bus.retention", "change bus retention (message_bus: POST or DELETE /retention)",
	  "method"),
	/* A waiver is an approval in itself: never without one. */
	{ .name = "compliance.waiver",
	  .summary = "waive a compliance control (compliance: POST /waivers; always gated)",
	  .params = { "control_id" },
	  .always = true,
	  .rule = "1 admin" },
};
#undef A

size_t sdk_gov_action_count(void) { return sizeof actions / sizeof actions[0]; }

const sdk_gov_action *sdk_gov_action_at(size_t i)
{
	return i < sdk_gov_action_count() ? &actions[i] : NULL;
}

const sdk_gov_action *sdk_gov_action_find(const char *name)
{
	for (size_t i = 0; name && i < sdk_gov_action_count(); i++)
		if (!strcmp(actions[i].name, name))
			return &actions[i];
	return NULL;
}

bool sdk_gov_listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t w = strcspn(p, " ,");
		if (w == n && !strncmp(p, name, n))
			return true;
		p += w;
	}
	return false;
}
