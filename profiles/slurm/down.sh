#!/bin/bash
# Stop the single-node Slurm that profiles/slurm/up.sh started (slurmd, slurmctld, then munged).
# Only daemons that up.sh started are stopped (it records them in /run/hbm-slurm/), each by the pid in
# its pid file. The packages stay, so the next up.sh is quick. up.sh's /etc/slurm/slurm.conf is replaced by
# one without settings (up.sh writes the real one again): a Slurm client whose config names a controller
# that is not running waits ~9 s in every command, and so does every `snakemake` start (the Slurm executor
# plugin runs `scontrol show config` when Snakemake loads it); with no settings it fails at once.
# Running it again is harmless. Jobs still queued or running are lost.
set -u

STATE=/run/hbm-slurm
CONF=/etc/slurm/slurm.conf
MARK="# Written by hbm profiles/slurm/up.sh"

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

# Empty up.sh's config unless a controller still runs with it.
if [ -f "$CONF" ] && grep -qF "$MARK" "$CONF"; then
    pid=$(cat /run/slurmctld.pid 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        say "slurmctld (pid $pid) still runs: leaving $CONF as it is"
    elif grep -q '^ClusterName=' "$CONF"; then
        cat >"$CONF" <<EOF
$MARK; the test Slurm was stopped by profiles/slurm/down.sh.
# No settings on purpose: Slurm commands (and the Slurm executor plugin that every snakemake start loads)
# fail at once ("ClusterName needs to be specified") instead of waiting ~9 s for the stopped controller.
# profiles/slurm/up.sh writes the real configuration again.
EOF
        say "emptied $CONF: Slurm commands now fail at once instead of waiting for the stopped controller"
    fi
fi
say "done"
