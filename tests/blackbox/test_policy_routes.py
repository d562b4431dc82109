"""The route walk: every route registered on :8000 (`grace policy routes
--json` lists them with their access level in the role table), called as
an admin, as a user and as nobody, once with the policy kernel deciding
(the default policy set, etc/policy/default.cedar) and once with the role
table ([policy] authorizer = table). Both must give the same answer to
each: let through (whatever the handler then says), refused 401, or
refused 403 by the authorizer. And the table's refusals must be the ones
the access levels say (nobody: 401 on every route that is not public;
a user: 403 on every admin route)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GRACE_BIN, GraceServer, GraceTestCase  # noqa: E402

KERNELS = {"policy": {}, "librarian": {}, "message_bus": {}}
USER, USER_PW = "walker", "walker-password-1"
# What fills a route's parameters: things that do not exist, so that no
# call changes what a later one sees (a 404 from the handler is "let through").
PARAMS = {"name": "ghost-kernel", "table": "t1", "id": "999", "group": "g1",
          "action": "restart", "*": "no/such/thing"}
ANY_METHODS = ["GET", "POST", "DELETE"]
UNROUTED = [("GET", "/no/such/route"), ("POST", "/memory/tables/t1/nothing")]


def routes():
    out = subprocess.run([GRACE_BIN, "policy", "routes", "--json"], capture_output=True,
                         check=True, timeout=30).stdout
    return json.loads(out)


def concrete(path):
    parts = []
    for seg in path.split("/"):
        if seg.startswith(":"):
            seg = PARAMS[seg[1:]]
        elif seg == "*":
            seg = PARAMS["*"]
        parts.append(seg)
    return "/".join(parts)


def outcome(status, body):
    """What the authorizer did: refused 401, refused 403 (its own refusal,
    not a handler's), or let the request through."""
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    msg = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
    if status == 401 and code == "unauthorized":
        return "401"
    if status == 403 and code == "forbidden" and ("policy" in msg or "admin role" in msg):
        return "403"
    if status == 503 and code == "policy_unavailable":
        return "503"
    return "through"


class RouteWalk(GraceTestCase):
    def walk(self, g):
        """{(method, path, who): outcome} over every route."""
        g.create_user(USER, USER_PW)
        tokens = {"admin": g.auth_headers()["Authorization"],
                  "user": "Bearer " + g.login(USER, USER_PW), "nobody": None}
        seen = {}
        calls = []
        for r in routes():
            methods = [r["method"]] if r["method"] else ANY_METHODS
            for m in methods:
                calls.append((m, r["path"], r["access"]))
        calls += [(m, p, "unrouted") for m, p in UNROUTED]
        for method, pattern, access in calls:
            path = concrete(pattern)
            for who in ("admin", "user", "nobody"):
                headers = {"Content-Type": "application/json"}
                if pattern == "/auth/logout" and who != "nobody":
                    # Its own session: the walk's must outlive the call.
                    name, pw = (g.first_admin() if who == "admin" else (USER, USER_PW))
                    headers["Authorization"] = "Bearer " + g.login(name, pw)
                elif tokens[who]:
                    headers["Authorization"] = tokens[who]
                body = {} if method in ("POST", "PUT", "PATCH") else None
                st, _, out = g.http(method, path, body, headers=headers, auth=who != "nobody")
                seen[(method, pattern, who)] = (outcome(st, out), st, access)
        return seen

    def test_same_answers_with_the_policy_kernel_as_with_the_role_table(self):
        with GraceServer(kernels=KERNELS) as g:
            by_policy = self.walk(g)
        with GraceServer(kernels=KERNELS, config={"policy": {"authorizer": "table"}}) as g:
            by_table = self.walk(g)
        self.assertEqual(set(by_policy), set(by_table))
        self.assertGreater(len(by_policy), 150)
        differ = {k: (by_policy[k], by_table[k]) for k in by_policy
                  if by_policy[k][0] != by_table[k][0]}
        self.assertEqual(differ, {}, "answers that differ (policy, table)")
        # The table's refusals are the access levels'; and so the policy's.
        for (method, pattern, who), (got, st, access) in by_table.items():
            want = None
            if who == "nobody" and access not in ("public", "anyone"):
                want = "401"
            elif who == "user" and access == "admin":
                want = "403"
            elif access in ("public", "anyone") or who == "admin":
                want = "through"
            if want:
                self.assertEqual(got, want, "%s %s as %s (%s): %s" % (method, pattern, who,
                                                                      access, st))
        # Every decided route was asked of the policy kernel, none refused 503.
        self.assertFalse([k for k, v in by_policy.items() if v[0] == "503"])


if __name__ == "__main__":
    unittest.main()
