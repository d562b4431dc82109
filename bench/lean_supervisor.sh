#!/bin/sh
# The crash-recovery peer: the leanest possible supervisor. It restarts
# `grace kernel NAME` the moment it exits; the kernel binds its own port each
# time (no socket handover, no readiness protocol, no backoff).
#
# usage: lean_supervisor.sh GRACE NAME [grace kernel options...]
# SIGTERM stops the current kernel and then this loop.
set -u
grace=$1 name=$2
shift 2
child=
restarts=0
trap 'if [ -n "$child" ]; then kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; fi; exit 0' TERM INT
while :; do
	"$grace" kernel "$name" "$@" &
	child=$!
	wait "$child"
	restarts=$((restarts + 1))
	# A bound on a kernel that cannot start at all (port taken, bad config):
	# the benchmark kills it 20 times, never hundreds.
	[ "$restarts" -lt 500 ] || exit 1
done
