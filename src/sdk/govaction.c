#include "sdk/govaction.h"

#include <string.h>

static const sdk_gov_action actions[] = {
	{ "kernel.stop", "stop a kernel (POST /kernel-ports/NAME/stop)", { "kernel" } },
	{ "port.clear_force", "clear_port with force (POST /network-healer/heal)", { "kernel" } },
	{ "user.delete", "delete a user (DELETE /auth/users/NAME)", { "name" } },
	{ "user.role", "change a user's role (only through a change request)", { "name", "role" } },
	{ "key.rotate", "rotate a key (crypto: POST /keys/NAME/rotate)", { "name" } },
	{ "key.delete", "delete a key (crypto: DELETE /keys/NAME)", { "name" } },
	{ "policy.set", "change a policy set (policy: PUT or DELETE /policy-sets/NAME)",
	  { "name", "method" } },
	{ "bus.retention", "change bus retention (message_bus: POST or DELETE /retention)",
	  { "method" } },
};

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
