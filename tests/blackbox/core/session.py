"""Calls to the API of a GraceServer as an admin, for the core kernels'
black-box tests that go through the gateway (/kernels/NAME/* needs the
admin role).

When the API asks for a login (401) and the shared harness has not given
one, this logs in as the first admin, whose password `grace serve` prints
once on its first start. If the harness logs in by itself, the 401 never
comes and this stays out of the way."""

import json
import re

from harness import scaled

_FIRST_ADMIN = re.compile(r"created user '([^']+)' \(admin\) with password (\S+)")


class AdminApi:
    def __init__(self, g):
        self.g = g
        self.headers = {}

    def _login(self):
        for line in self.g.log().splitlines():
            try:
                msg = json.loads(line).get("msg") or json.loads(line).get("message") or line
            except ValueError:
                msg = line
            m = _FIRST_ADMIN.search(msg)
            if m:
                st, _, out = self.g.http("POST", "/auth/login",
                                         {"username": m.group(1), "password": m.group(2)},
                                         timeout=scaled(10))
                if st == 200 and isinstance(out, dict) and out.get("token"):
                    self.headers = {"Authorization": "Bearer " + out["token"]}
                    return True
        return False

    def http(self, method, path, body=None, headers=None, timeout=10.0):
        """g.http with the admin session: (status, headers, body)."""
        for attempt in (0, 1):
            h = dict(self.headers)
            h.update(headers or {})
            st, hdrs, out = self.g.http(method, path, body, h, timeout=scaled(timeout))
            if st != 401 or attempt or not self._login():
                return st, hdrs, out
        return st, hdrs, out

    def kernel(self, name):
        st, _, body = self.http("GET", "/kernel-ports/" + name)
        if st != 200:
            raise AssertionError("GET /kernel-ports/%s: %s %r" % (name, st, body))
        return body

    def wait_kernel(self, name, pred, timeout=None):
        def p():
            k = self.kernel(name)
            return k if pred(k) else None
        return self.g.wait_for(p, timeout, message="kernel %s" % name)
