#!/usr/bin/env python3
"""The README's kernel table, made from `grace kernels-list --json` (the
kernels' own definitions), so that it cannot drift from them.

    scripts/kernel_table.py [--grace build/grace] [--write | --check] [README.md]

Prints the table; --write replaces the one between the markers in the
README; --check exits 1 (with a diff) when the README's differs.
tests/blackbox/test_kernel_table.py runs --check."""

import argparse
import difflib
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = ("<!-- The kernel table: scripts/kernel_table.py --write makes it from "
         "`grace kernels-list --json`; a test checks it. -->")
END = "<!-- End of the kernel table. -->"
STATES = {"complete": "**complete**", "partial": "partial", "placeholder": "placeholder"}


def kernels(grace):
    out = subprocess.run([grace, "kernels-list", "--json"], capture_output=True, check=True,
                         timeout=30).stdout
    return json.loads(out)["kernels"]


def cell(text):
    return str(text).replace("|", "\\|")


def table(defs):
    rows = [BEGIN, "| port | kernel | tier | state | what it does |", "|---|---|---|---|---|"]
    for k in defs:
        rows.append("| %d | %s | %s | %s | %s |" % (k["port"], cell(k["name"]), cell(k["tier"]),
                                                 STATES[k["state"]], cell(k["summary"])))
    rows.append(END)
    return "\n".join(rows) + "\n"


def split(text, path):
    """(before, table, after) of a README; the table with its markers."""
    b = text.find(BEGIN)
    e = text.find(END)
    if b < 0 or e < b:
        raise SystemExit("%s: no kernel table between the markers\n  %s\n  %s"
                         % (path, BEGIN, END))
    e += len(END) + 1
    return text[:b], text[b:e], text[e:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grace", default=os.environ.get("GRACE_BIN",
                                                      os.path.join(REPO, "build", "grace")))
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    ap.add_argument("readme", nargs="?", default=os.path.join(REPO, "README.md"))
    a = ap.parse_args()
    want = table(kernels(a.grace))
    if not (a.write or a.check):
        sys.stdout.write(want)
        return 0
    with open(a.readme, encoding="utf-8") as f:
        text = f.read()
    before, have, after = split(text, a.readme)
    if have == want:
        return 0
    if a.check:
        sys.stdout.writelines(difflib.unified_diff(
            have.splitlines(True), want.splitlines(True), a.readme + " (now)",
            "from grace kernels-list --json"))
        print("%s: the kernel table differs from the kernels' definitions: run "
              "scripts/kernel_table.py --write" % a.readme, file=sys.stderr)
        return 1
    with open(a.readme, "w", encoding="utf-8") as f:
        f.write(before + want + after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
