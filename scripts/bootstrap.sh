#!/bin/sh
# Installs the Debian packages Grace needs, only those that are missing.
#   scripts/bootstrap.sh          build and run dependencies
#   scripts/bootstrap.sh --test   also what the tests use (cmocka, python3, promtool,
#                                 systemd-analyze, debhelper and lintian for the package,
#                                 libsystemd for the stand-in kernels, clang with
#                                 libFuzzer's runtime for scripts/fuzz.sh): a test
#                                 whose tool is missing fails, naming the package
#   scripts/bootstrap.sh --bench  also what the benchmarks compare against
set -eu

pkgs="build-essential pkg-config meson ninja-build libevent-dev libjansson-dev
libsqlite3-dev libsodium-dev libinih-dev libcurl4-openssl-dev libyaml-dev libjq-dev
libseccomp-dev libprotobuf-c-dev protobuf-c-compiler bubblewrap libarchive-dev libpcre2-dev
libssl-dev libpq-dev libnats-dev postgresql-client-15"
for arg in "$@"; do
	case "$arg" in
	# clang only recommends libclang-rt-14-dev, the runtime that
	# -fsanitize=fuzzer needs; llvm gives sanitizer reports their symbols.
	--test) pkgs="$pkgs libcmocka-dev python3 prometheus procps libsystemd0 python3-croniter
		prometheus-alertmanager python3-xapian chromium clang libclang-rt-14-dev llvm
		openssl systemd debhelper dpkg-dev fakeroot lintian man-db python3-cryptography
		postgresql-15 nats-server iproute2" ;;
	# s6 and runit: the crash-recovery peers (bench/restart_bench.py); their
	# supervisors are run by the bench itself, never as services.
	--bench) pkgs="$pkgs python3 wrk nginx-light h2o redis-server valgrind hyperfine procps
		strace s6 runit" ;;
	*) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
	esac
done

# The test oracles from npm (tests/node/package-lock.json): installed, never
# committed; again whenever the lock file changes.
npm_oracles() {
	dir="$(dirname "$0")/../tests/node"
	stamp="$dir/node_modules/.grace-lock"
	if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
		return 0
	fi
	command -v npm >/dev/null || { echo "bootstrap: npm (Node.js 20) is needed for the tests" >&2; exit 1; }
	echo "bootstrap: npm ci in tests/node" >&2
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) &&
		cp "$dir/package-lock.json" "$stamp"
}

# The executor runs jobs as this unprivileged user when Grace runs as root
# (RLIMIT_NPROC does not bind root; docs/executor.md). Made once, as root only.
jobs_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	id grace-jobs >/dev/null 2>&1 && return 0
	echo "bootstrap: creating the system user grace-jobs (the executor's jobs)" >&2
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin grace-jobs
}
jobs_user

# The tests' throw-away PostgreSQL (tests/blackbox/pg_server.py) runs as
# this unprivileged user: initdb refuses root. Made once, as root only.
pg_test_user() {
	[ "$(id -u)" -eq 0 ] || return 0
	id grace-pg-test >/dev/null 2>&1 && return 0
	echo "bootstrap: creating the system user grace-pg-test (the tests' PostgreSQL)" >&2
	useradd --system --user-group --no-create-home --home-dir /nonexistent \
		--shell /usr/sbin/nologin grace-pg-test
}
pg_test_user

missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
want_npm=false
for arg in "$@"; do [ "$arg" = --test ] && want_npm=true; done
if [ -z "$missing" ]; then
	if $want_npm; then npm_oracles; fi
	exit 0
fi

echo "bootstrap: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# The packaged daemons (prometheus, nginx, redis, runit's runsvdir) must not
# start on install: tests and benchmarks start their own, on loopback ports
# and in service directories of their choosing.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod +x "$policy"
	trap '$sudo rm -f "$policy"' EXIT
fi
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
if $want_npm; then npm_oracles; fi
