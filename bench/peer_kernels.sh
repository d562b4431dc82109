#!/bin/sh
# The cold-start peer: every kernel started by a plain shell loop in the
# background, each binding its own port. No supervisor, no readiness
# protocol: what is left is the cost of starting the kernels themselves.
#
# usage: peer_kernels.sh GRACE PIDFILE NAME... -- [grace kernel options...]
# Writes one pid a line to PIDFILE and waits for them all; the caller stops
# each kernel by its pid (SIGTERM), after which this script exits.
set -u
grace=$1 pidfile=$2
shift 2
names=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	names="$names $1"
	shift
done
[ $# -gt 0 ] && shift # the "--"
: >"$pidfile"
for n in $names; do
	"$grace" kernel "$n" "$@" &
	echo $! >>"$pidfile"
done
wait
