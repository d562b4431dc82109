"""Prints 'N passed, N failed[, N skipped]' from a meson testlog.json."""
import json
import sys

passed = failed = skipped = 0
try:
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            try:
                result = json.loads(line).get("result")
            except ValueError:
                # A torn line (two runs wrote one log) is no evidence of a pass.
                print(f"unreadable test log line: {line[:80]!r}", file=sys.stderr)
                result = None
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
except OSError as e:
    print(f"no test log: {e}", file=sys.stderr)
    failed += 1
line = f"{passed} passed, {failed} failed"
if skipped:
    line += f", {skipped} skipped"
print(line)
sys.exit(1 if failed or passed == 0 else 0)
