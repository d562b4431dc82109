#!/bin/sh
# Grace benchmarks: bench/run.sh BUILD_DIR (what `make bench` runs).
# Runs grace_bench.py (cold start, crash, memory, search), then
# gateway_bench.py (gateway vs direct vs nginx, guardian detection, heal
# durations), then restart_bench.py (kill -9 to answering again: Grace's
# standby against a fresh spawn, s6-supervise and runsv). Prints a compact report and writes it to bench/results-latest.txt.
#
# Environment (all optional):
#   BENCH_DOCS=100000        documents loaded for the search benchmark
#   BENCH_ONLY=cold,crash,memory,search,gateway,guardian,heal,restart   run a subset
#   BENCH_PORT_OFFSET=N      fixed --port-offset (default: first free of
#                            21000, 21300, ... 23700)
#   BENCH_STARTS=10 BENCH_KILLS=20 BENCH_QUERIES=300
#   BENCH_WRK_SECS=10 BENCH_GW_ROUNDS=3 BENCH_GUARDIAN_RUNS=5 BENCH_HEALS=5
#   BENCH_RESTART_ROUNDS=5 BENCH_RESTART_KILLS=10
#   BENCH_TIMEOUT=1200       hard bound on the whole run, in seconds
# Extra arguments go to both scripts (see their --help); each ignores the
# options it does not have.
set -eu
if [ $# -lt 1 ]; then
	echo "usage: bench/run.sh BUILD_DIR [options of grace_bench.py / gateway_bench.py]" >&2
	exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$1
shift
only=${BENCH_ONLY:-cold,crash,memory,search,gateway,guardian,heal,restart}
has() { case ",$only," in *",$1,"*) return 0 ;; esac; return 1; }
part1=false part2=false part3=false
for b in cold crash memory search; do has "$b" && part1=true; done
for b in gateway guardian heal; do has "$b" && part2=true; done
has restart && part3=true
tools="python3 wrk"
has gateway && tools="$tools nginx"
has restart && tools="$tools s6-supervise s6-notifyoncheck runsv bash"
for tool in $tools; do
	command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
		{ echo "bench: $tool not found (scripts/bootstrap.sh --bench)" >&2; exit 1; }
done
[ -x "$build/grace" ] || { echo "bench: $build/grace not built" >&2; exit 1; }

budget=${BENCH_TIMEOUT:-1200}
t0=$(date +%s)
# Key figures of the first script (the crash median) for the second's
# summary of targets.
snap=$(mktemp -d "${TMPDIR:-/tmp}/grace-bench-run.XXXXXX")
trap 'rm -rf "$snap"' EXIT
trap 'exit 130' INT TERM HUP
summary=$snap/summary.json
# One copy of the binary for both scripts: a rebuild during the run (ninja
# relinks in place) changes nothing, and both parts of the report measure
# the same binary (the sha256 in each header).
cp "$build/grace" "$snap/grace"
append=
# Each script gets SIGTERM when the budget is spent (it then stops everything
# it started, by pid) and SIGKILL 20 s later if it has not finished by then.
if $part1; then
	timeout -k 20 "$budget" python3 "$here/grace_bench.py" "$build" --only "$only" \
		--summary "$summary" --snapshot "$snap/grace" "$@"
	append=--append
fi
if $part2; then
	left=$((budget - ($(date +%s) - t0)))
	[ "$left" -gt 30 ] || { echo "bench: BENCH_TIMEOUT=$budget s spent before gateway_bench.py" >&2; exit 1; }
	timeout -k 20 "$left" python3 "$here/gateway_bench.py" "$build" --only "$only" \
		--summary "$summary" --snapshot "$snap/grace" $append "$@"
	append=--append
fi
if $part3; then
	left=$((budget - ($(date +%s) - t0)))
	[ "$left" -gt 30 ] || { echo "bench: BENCH_TIMEOUT=$budget s spent before restart_bench.py" >&2; exit 1; }
	timeout -k 20 "$left" python3 "$here/restart_bench.py" "$build" --snapshot "$snap/grace" \
		$append "$@"
fi
