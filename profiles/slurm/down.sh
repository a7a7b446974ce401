#!/bin/bash
# Stop the single-node Slurm that profiles/slurm/up.sh started (slurmd, slurmctld, then munged).
# Only daemons that up.sh started are stopped (it records them in /run/hbm-slurm/), each by the pid in
# its pid file. Packages and /etc/slurm/slurm.conf stay, so the next up.sh is quick. Running it again is
# harmless. Jobs still queued or running are lost.
set -u

STATE=/run/hbm-slurm

say() { echo "slurm-down: $*"; }
die() { echo "slurm-down: ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it stops system daemons); try: sudo $0"

stop() {  # name pidfile
    local name=$1 pidfile=$2 pid
    if [ ! -e "$STATE/$name" ]; then
        say "$name was not started by up.sh; leaving it alone"
        return 0
    fi
    pid=$(cat "$pidfile" 2>/dev/null)
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
        say "$name is not running"
        rm -f "$STATE/$name"
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) did not stop in 15 s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$STATE/$name"
}

stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid
say "done"
