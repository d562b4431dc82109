"""What the audit and wiring tests share: one grace serve per test class
with the core kernels, API calls that check their status, and the audit
trail's events read through every page of its cursor."""

import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

AUDIT = "/kernels/audit"
ILOG = "/kernels/immutable_log"
KERNELS = {"message_bus": {}, "immutable_log": {}, "audit": {}, "librarian": {}, "trust": {}}


def now_ms():
    return int(time.time() * 1000)


def qs(**q):
    return "?" + urllib.parse.urlencode(q) if q else ""


class ServerCase(ServerClassCase):
    """One grace serve (with `kernels` and `config`) for all the tests of a
    class. Aggregates (refused anonymous requests, failed logins) are counted
    in windows of 1 s here, so they reach the audit trail within a second or
    two rather than a minute."""
    kernels = KERNELS
    config = {"audit": {"window_s": 1}}

    @classmethod
    def make_server(cls):
        return GraceServer(kernels=cls.kernels, config=cls.config)

    def call(self, method, path, body=None, expect=200, headers=None, auth=True):
        """An API call as the admin (unless auth=False) whose status must be
        `expect` (None: any); returns the parsed answer."""
        st, _, out = self.g.http(method, path, body, headers=headers, timeout=scaled(10),
                                 auth=auth)
        if expect is not None:
            self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def events(self, **q):
        """Every audit event matching q, following the cursor (pages of 1000
        unless q gives a limit)."""
        out, cursor, pages = [], None, 0
        while True:
            qq = dict({"limit": 1000}, **q)
            if cursor is not None:
                qq["cursor"] = cursor
            p = self.call("GET", AUDIT + "/events" + qs(**qq))
            out.extend(p["events"])
            cursor = p["next_cursor"]
            pages += 1
            self.assertLess(pages, 10000)
            if cursor is None:
                return out
