#!/bin/bash
# Bring up a single-node Slurm on this Debian machine, for tests and demos of `--profile profiles/slurm`.
#
#   sudo profiles/slurm/up.sh      # install, configure, start; waits until the node is idle
#   sudo profiles/slurm/down.sh    # stop what this script started
#
# What it does (every step is skipped when already done, so running it again is harmless):
#   1. installs Debian's munge, slurmctld, slurmd and slurm-client with apt-get (if missing);
#   2. makes a munge key (if missing) and writes /etc/slurm/slurm.conf for this host from `slurmd -C`
#      (one node, one partition `debug`, no accounting, RealMemory a little below what the host has);
#   3. starts munged, slurmctld and slurmd in the background (no systemd needed);
#   4. waits until `sinfo` shows the node idle.
# It refuses to touch an /etc/slurm/slurm.conf it did not write: a machine with a real Slurm is left alone.
# Exits non-zero, with the reason, when it cannot (not root, no apt-get, a daemon that does not start);
# then, unless slurmctld runs, it leaves its slurm.conf without settings (as down.sh does), so that Slurm
# commands fail at once instead of waiting ~9 s for a controller that is not there. Every `snakemake`
# start would wait too: the Slurm executor plugin runs `scontrol show config` when Snakemake loads it.
# Why the config is at /etc/slurm/slurm.conf: the executor's job step drops SLURM_* variables (SLURM_CONF
# too) before its inner srun. No accounting daemon runs, so the profile polls job states with squeue,
# which needs finished jobs kept visible (MinJobAge).
set -u

CONF=/etc/slurm/slurm.conf
MARK="# Written by hbm profiles/slurm/up.sh"
STATE=/run/hbm-slurm            # what this script started (read by down.sh)
LOGDIR=/var/log/slurm
WAIT_S=${HBM_SLURM_WAIT:-90}

say() { echo "slurm-up: $*"; }
die() { empty_conf; echo "slurm-up: ERROR: $*" >&2; exit 1; }

# Replace this script's slurm.conf by one without settings, unless slurmctld runs (as down.sh does).
empty_conf() {
    local pid
    [ "$(id -u)" = 0 ] && [ -f "$CONF" ] && grep -qF "$MARK" "$CONF" && grep -q '^ClusterName=' "$CONF" || return 0
    pid=$(cat /run/slurmctld.pid 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then return 0; fi
    cat >"$CONF" <<EOF
$MARK; no slurmctld runs (profiles/slurm/up.sh failed to start the test Slurm).
# No settings on purpose: Slurm commands (and the Slurm executor plugin that every snakemake start loads)
# fail at once ("ClusterName needs to be specified") instead of waiting ~9 s for a controller.
# profiles/slurm/up.sh writes the real configuration again.
EOF
    echo "slurm-up: emptied $CONF, so that Slurm commands fail at once instead of waiting for a controller" >&2
}

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts system daemons); try: sudo $0"

# Slurm answers and shows an idle (or partly used) node: nothing to do.
node_ready() { sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

if command -v sinfo >/dev/null 2>&1 && node_ready; then
    say "Slurm is already up: $(sinfo -h -N -o '%N %t %c CPUs %m MB' | head -n 1)"
    exit 0
fi

# 1. Packages.
install_packages() {
    command -v apt-get >/dev/null 2>&1 || die "no apt-get: this script installs Debian's Slurm packages (munge slurmctld slurmd slurm-client)"
    export DEBIAN_FRONTEND=noninteractive
    local log args=(-y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 munge slurmctld slurmd slurm-client)
    log=$(mktemp)
    say "installing munge slurmctld slurmd slurm-client with apt-get ..."
    if ! apt-get install "${args[@]}" >"$log" 2>&1 &&
       ! { apt-get update -qq -o DPkg::Lock::Timeout=300 && apt-get install "${args[@]}"; } >"$log" 2>&1; then
        local last
        last=$(grep -v '^\s*$' "$log" | tail -n 1)
        rm -f "$log"
        die "apt-get could not install the Slurm packages: $last"
    fi
    rm -f "$log"
}
for bin in munged slurmctld slurmd sinfo sbatch squeue; do
    if ! command -v "$bin" >/dev/null 2>&1; then install_packages; break; fi
done
for bin in munged slurmctld slurmd sinfo sbatch squeue; do
    command -v "$bin" >/dev/null 2>&1 || die "'$bin' is still missing after installing the packages"
done

# 2. Configuration.
if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not touching a Slurm set up by someone else (is its daemon down? start it, or move the file away)"
fi

if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then mungekey --create --force >/dev/null || die "mungekey --create failed"
    else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none || die "could not write a munge key"; fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null
    chmod 400 /etc/munge/munge.key
fi

host=$(hostname -s)
# The node's name must resolve: map it to 127.0.0.1 when it does not.
if ! getent hosts "$host" >/dev/null 2>&1; then
    say "adding '127.0.0.1 $host' to /etc/hosts (the host name did not resolve)"
    echo "127.0.0.1 $host" >>/etc/hosts
fi

node=$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=') || die "'slurmd -C' printed no NodeName line"
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
[ -n "$mem" ] || die "'slurmd -C' printed no RealMemory: $node"
# A node that reports less memory than RealMemory is drained: stay 5 % (at least 256 MB) below.
margin=$(( mem / 20 > 256 ? mem / 20 : 256 ))
real=$(( mem - margin ))
[ "$real" -gt 0 ] || die "too little memory for a Slurm node ($mem MB)"
node=$(sed -e "s/RealMemory=[0-9]*/RealMemory=$real/" -e "s/^NodeName=[^ ]*/NodeName=$host NodeAddr=127.0.0.1/" <<<"$node")

slurm_user=root
id slurm >/dev/null 2>&1 && slurm_user=slurm

new=$(mktemp)
cat >"$new" <<EOF
$MARK for a single-node test cluster on $host.
# profiles/slurm/down.sh stops its daemons. See README.md, 'Running on a cluster'.
ClusterName=hbm-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$slurm_user
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without this a job that gives no --mem would take the whole node's memory.
DefMemPerCPU=1024
# Snakemake's executor polls with squeue (no accounting here): finished jobs must stay visible a while.
MinJobAge=300
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
if ! cmp -s "$new" "$CONF"; then
    say "writing $CONF ($host: $(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node") CPUs, RealMemory=$real MB of $mem MB)"
    install -m 644 "$new" "$CONF"
    conf_changed=1
else
    conf_changed=0
fi
rm -f "$new"

mkdir -p "$STATE" "$LOGDIR" /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown "$slurm_user" /var/lib/slurm/slurmctld "$LOGDIR" 2>/dev/null

# 3. Daemons. A daemon counts as running when its pid file names a live process.
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if running /run/munge/munged.pid && munge -n </dev/null | unmunge >/dev/null 2>&1; then
    say "munged is running"
else
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
    chmod 755 /run/munge
    say "starting munged"
    runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
    touch "$STATE/munged"
    for _ in $(seq 20); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munge does not answer (see /var/log/munge/munged.log)"
fi

start_daemon() {  # name pidfile
    local name=$1 pidfile=$2
    if running "$pidfile" && [ "$conf_changed" = 0 ]; then
        say "$name is running"
        return
    fi
    if running "$pidfile"; then
        say "restarting $name (its configuration changed)"
        kill "$(cat "$pidfile")"
        for _ in $(seq 20); do running "$pidfile" || break; sleep 0.5; done
    else
        say "starting $name"
    fi
    "$name" || die "$name did not start (see $LOGDIR/$name.log)"
    touch "$STATE/$name"
    for _ in $(seq 20); do running "$pidfile" && return; sleep 0.5; done
    die "$name exited after starting; the end of $LOGDIR/$name.log: $(tail -n 3 "$LOGDIR/$name.log" 2>/dev/null | tr '\n' ' ')"
}
start_daemon slurmctld /run/slurmctld.pid
start_daemon slurmd /run/slurmd.pid

# 4. Wait for the node.
say "waiting up to ${WAIT_S} s for the node to be idle ..."
for _ in $(seq "$WAIT_S"); do
    if node_ready; then
        say "Slurm is up: $(sinfo -h -N -o '%N %t %c CPUs %m MB' | head -n 1); run 'profiles/slurm/down.sh' to stop it"
        exit 0
    fi
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1)
    case "$state" in
        drain*|down*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 ;;
    esac
    sleep 1
done
die "the node is not idle after ${WAIT_S} s (sinfo: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -n 1)); see $LOGDIR/slurmctld.log and $LOGDIR/slurmd.log"
