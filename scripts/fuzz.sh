#!/bin/sh
# Builds the libFuzzer harnesses of tests/fuzz with clang (ASan and UBSan
# on) in build-fuzz and runs each for a fixed time from its seed corpus,
# then prints each one's executions per second and coverage. Exits
# non-zero when any harness crashed, failed a property or leaked; the
# input that did it is kept and its path printed. docs/fuzzing.md.
#
#   scripts/fuzz.sh [-t SECONDS] [-j JOBS] [--fresh] [TARGET...]
#     -t SECONDS  per target (default 30, or $FUZZ_SECONDS)
#     -j JOBS     targets run at once (default 2, or $FUZZ_JOBS)
#     --fresh     start from the seed corpus only, forgetting what earlier
#                 runs in build-fuzz found (CI does, for comparable runs)
#     TARGET      http_request, router, ... (default: all)
#   scripts/fuzz.sh --coverage [TARGET...]
#     replays each target's corpus (seeds and what runs found) in a build
#     with source-based coverage (build-fuzz-cov) and prints the line and
#     branch coverage of the files it tests, with llvm-cov
set -u
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-2}
fresh=false
coverage=false
targets=""
while [ $# -gt 0 ]; do
	case "$1" in
	-t) seconds=$2; shift 2 ;;
	-j) jobs=$2; shift 2 ;;
	--fresh) fresh=true; shift ;;
	--coverage) coverage=true; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	-*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
	*) targets="$targets $1"; shift ;;
	esac
done
all=$(ls tests/fuzz/fuzz_*.c | sed -E 's|.*/fuzz_(.*)\.c|\1|')
[ -n "$targets" ] || targets=$all

command -v clang >/dev/null ||
	{ echo "fuzz: clang is needed (scripts/bootstrap.sh --test installs it)" >&2; exit 1; }

build=build-fuzz
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true >/dev/null ||
		{ echo "fuzz: meson setup $build failed" >&2; exit 1; }
fi
out="$build/fuzz"

# The files each target tests, for the coverage report.
sources_of() {
	case "$1" in
	http_request|http_response|chunked) echo src/sdk/http_parse.c ;;
	http_server) echo src/sdk/http_conn.c src/sdk/http.c src/sdk/http_parse.c ;;
	router) echo src/sdk/router.c src/sdk/http.c ;;
	memory_filter) echo src/serve/memory/filter.c src/serve/memory/rows.c ;;
	json_bodies) echo src/serve/memory/columns.c src/serve/memory/tables.c \
		src/serve/memory/rows.c ;;
	cedar) echo src/kernels/policy/lexer.c src/kernels/policy/parser.c \
		src/kernels/policy/eval.c src/kernels/policy/value.c src/kernels/policy/ext_ip.c \
		src/kernels/policy/ext_decimal.c src/kernels/policy/ext_datetime.c \
		src/kernels/policy/authorize.c ;;
	cedar_json) echo src/kernels/policy/json.c src/kernels/policy/entities.c \
		src/kernels/policy/value.c src/kernels/policy/authorize.c ;;
	auth_headers) echo src/serve/auth/cookie.c src/serve/auth/csrf.c src/serve/auth/hosts.c ;;
	bus_publish) echo src/kernels/message_bus/bus.c src/kernels/message_bus/wire.c \
		src/kernels/message_bus/subject.c ;;
	*) ls "src/"*"/$1.c" 2>/dev/null ;;
	esac
}

# llvm-cov's table for the files listed, as "file lines branches functions".
cov_table() {
	profile=$1; shift
	bins=""
	files=""
	for a in "$@"; do
		case "$a" in
		src/*) files="$files $a" ;;
		*) if [ -z "$bins" ]; then bins=$a; else bins="$bins -object $a"; fi ;;
		esac
	done
	# shellcheck disable=SC2086
	llvm-cov report $bins -instr-profile="$profile" |
		awk -v files="$files" 'BEGIN { n = split(files, f, " "); for (i = 1; i <= n; i++) want[f[i]] = 1 }
			($1 in want) { printf "  %-36s lines %7s  branches %7s  functions %7s\n", $1, $10, $13, $7 }'
}

if $coverage; then
	cov=build-fuzz-cov
	if [ ! -f "$cov/build.ninja" ]; then
		# Meson runs a test program: its profile goes nowhere.
		LLVM_PROFILE_FILE=/dev/null CC=clang meson setup "$cov" -Dfuzz=true \
			-Dc_args='-fprofile-instr-generate -fcoverage-mapping' \
			-Dc_link_args='-fprofile-instr-generate' >/dev/null ||
			{ echo "fuzz: meson setup $cov failed" >&2; exit 1; }
	fi
	mkdir -p "$out/coverage"
	rm -f "$out/coverage/"*
	all_bins=""
	all_files=""
	for t in $targets; do
		ninja -C "$cov" "tests/fuzz/fuzz_$t" >/dev/null ||
			{ echo "fuzz: building $t with coverage failed" >&2; exit 1; }
		mkdir -p "$out/corpus/$t"
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/grace-fuzz-$t.XXXXXX")
		# -runs=0: each input of the corpus once, nothing new.
		GRACE_FUZZ_TMP=$tmp LLVM_PROFILE_FILE="$out/coverage/$t.%p.profraw" \
			"$cov/tests/fuzz/fuzz_$t" -runs=0 "$out/corpus/$t" "tests/fuzz/corpus/$t" \
			>"$out/coverage/$t.log" 2>&1
		rm -rf "$tmp"
		llvm-profdata merge -sparse "$out/coverage/$t".*.profraw -o "$out/coverage/$t.profdata" ||
			exit 1
		inputs=$(find "$out/corpus/$t" "tests/fuzz/corpus/$t" -type f | wc -l)
		echo "$t ($inputs inputs):"
		cov_table "$out/coverage/$t.profdata" "$cov/tests/fuzz/fuzz_$t" $(sources_of "$t")
		all_bins="$all_bins $cov/tests/fuzz/fuzz_$t"
		all_files="$all_files $(sources_of "$t")"
	done
	if [ "$(echo $targets | wc -w)" -gt 1 ]; then
		llvm-profdata merge -sparse "$out/coverage/"*.profdata -o "$out/coverage/all.merged" ||
			exit 1
		echo "all targets together:"
		# shellcheck disable=SC2046
		cov_table "$out/coverage/all.merged" $all_bins $(echo $all_files | tr ' ' '\n' | sort -u)
	fi
	exit 0
fi
ninja_targets=""
for t in $targets; do
	[ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target $t" >&2; exit 2; }
	ninja_targets="$ninja_targets tests/fuzz/fuzz_$t"
done
# shellcheck disable=SC2086
ninja -C "$build" $ninja_targets >/dev/null || {
	echo "fuzz: the build failed:" >&2
	# shellcheck disable=SC2086
	ninja -C "$build" $ninja_targets >&2
	exit 1
}

$fresh && rm -rf "$out/corpus"
mkdir -p "$out/corpus" "$out/artifacts" "$out/logs"

# One target: its working corpus starts as (or grows from) the seeds; the
# seed directory in the tree is only read. Its scratch files (a memory
# store) live in a directory of its own, removed after.
run_one() {
	t=$1
	corpus="$out/corpus/$t"
	mkdir -p "$corpus"
	dict=tests/fuzz/$t.dict
	[ -f "$dict" ] || dict=tests/fuzz/${t%%_*}.dict
	dict_arg=""
	[ -f "$dict" ] && dict_arg="-dict=$dict"
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/grace-fuzz-$t.XXXXXX")
	# halt_on_error, abort_on_error: a finding is a crash libFuzzer keeps.
	# A smaller quarantine keeps a run's memory near its working set.
	GRACE_FUZZ_TMP=$tmp \
	ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:quarantine_size_mb=32 \
	UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
		"$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
		$dict_arg "$corpus" "tests/fuzz/corpus/$t" >"$out/logs/$t.log" 2>&1
	echo $? >"$out/logs/$t.rc"
	rm -rf "$tmp"
}

if [ "$jobs" -gt 1 ]; then
	running=0
	for t in $targets; do
		run_one "$t" &
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait
			running=0
		fi
	done
	wait
else
	for t in $targets; do run_one "$t"; done
fi

# The figures, from libFuzzer's own lines: "#N DONE cov: C ft: F corp: K/Sb
# ... exec/s: E" and "Loaded 1 PC tables (P PCs)"; cov counts the edges
# reached, P the instrumented code's points.
failed=0
printf '%-14s %8s %9s %7s %12s %7s %12s\n' target seconds runs exec/s "cov (of PCs)" ft corpus
for t in $targets; do
	log="$out/logs/$t.log"
	rc=$(cat "$out/logs/$t.rc" 2>/dev/null || echo 1)
	done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
	pcs=$(sed -nE 's/.*PC tables? \(([0-9]+) PCs\).*/\1/p' "$log" | head -n 1)
	runs=$(echo "$done_line" | sed -nE 's/^#([0-9]+).*/\1/p')
	cov=$(echo "$done_line" | sed -nE 's/.* cov: ([0-9]+).*/\1/p')
	ft=$(echo "$done_line" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
	corp=$(echo "$done_line" | sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
	eps=$(echo "$done_line" | sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p')
	if [ "$rc" -ne 0 ] || [ -z "$done_line" ]; then
		failed=$((failed + 1))
		printf '%-14s FAILED (exit %s)\n' "$t" "$rc"
		grep -E 'property failed|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error' \
			"$log" | head -n 3 | sed 's/^/    /'
		artifact=$(sed -nE "s/.*Test unit written to (.*)/\1/p" "$log" | tail -n 1)
		[ -n "$artifact" ] &&
			echo "    input kept: $artifact (replay: $build/tests/fuzz/fuzz_$t $artifact)"
		echo "    log: $log"
		continue
	fi
	printf '%-14s %8s %9s %7s %12s %7s %12s\n' "$t" "$seconds" "$runs" "$eps" \
		"$cov ($pcs)" "$ft" "$corp"
done
n=$(echo $targets | wc -w)
echo "fuzz: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
