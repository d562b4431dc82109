#!/bin/sh
# Runs every test (unit and black-box) of one build directory and ends with
# the line "N passed, N failed".
set -u
build=${1:-build}
meson test -C "$build" --print-errorlogs --num-processes "${GRACE_TEST_JOBS:-4}" \
	${MESON_TEST_ARGS:-}
rc=$?
python3 "$(dirname "$0")/test_summary.py" "$build/meson-logs/testlog.json" || rc=1
exit $rc
