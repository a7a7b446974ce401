#!/bin/sh
# System packages some tests need; `make test` runs this first (target test-deps).
# It never fails the build: a dependency it cannot install only makes its tests skip, and it says why.
# Opt out with HBM_NO_SYSTEM_DEPS=1. One function per dependency.

say() { echo "setup_system_deps: $*"; }

# Install Debian packages "$@" with apt-get. On failure return 1 with the reason in $why.
apt_install() {
    why=""
    if [ "$(id -u)" != 0 ]; then why="not running as root"; return 1; fi
    if ! command -v apt-get >/dev/null 2>&1; then why="no apt-get on this system"; return 1; fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    set -- -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "$@"
    # Try with the package lists as they are; when that fails (none yet, or stale ones giving 404s),
    # update them once and try again.
    if ! apt-get install "$@" >"$log" 2>&1 &&
       ! { apt-get update -qq -o DPkg::Lock::Timeout=300 && apt-get install "$@"; } >"$log" 2>&1; then
        why="apt-get failed: $(grep -v '^\s*$' "$log" | tail -n 1)"
        rm -f "$log"; return 1
    fi
    rm -f "$log"
}

# Headless Chromium: tests/test_report_safety.py opens the HTML report in it.
chromium_dep() {
    [ -x /usr/bin/chromium ] && return 0
    if apt_install chromium && [ -x /usr/bin/chromium ]; then
        say "installed Debian's chromium for the browser test"
    else
        say "chromium is missing (${why:-not installed by apt-get}); the browser test in tests/test_report_safety.py will be skipped"
    fi
}

# A single-node Slurm for tests/test_slurm.py (the workflow through `--profile profiles/slurm`):
# profiles/slurm/up.sh installs Debian's munge, slurmctld, slurmd and slurm-client, writes
# /etc/slurm/slurm.conf and starts the daemons; it does nothing when a Slurm is already up.
# HBM_NO_SLURM=1 skips only this.
slurm_up() {
    if sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        say "a Slurm node is up: tests/test_slurm.py will run on it"; return 0
    fi
    skip="tests/test_slurm.py will be skipped"
    if [ "${HBM_NO_SLURM:-0}" = 1 ]; then say "HBM_NO_SLURM=1: not starting a test Slurm; $skip"; return 0; fi
    if [ "$(id -u)" != 0 ]; then say "not running as root, so no test Slurm can be set up; $skip"; return 0; fi
    if ! command -v bash >/dev/null 2>&1; then say "no bash to run profiles/slurm/up.sh; $skip"; return 0; fi
    log=$(mktemp)
    if timeout 900 bash "$(dirname "$0")/../profiles/slurm/up.sh" >"$log" 2>&1; then
        say "$(tail -n 1 "$log" | sed 's/^slurm-up: //')"
    else
        say "could not bring up a test Slurm ($(grep -v '^\s*$' "$log" | tail -n 1 | sed 's/^slurm-up: //')); $skip"
    fi
    rm -f "$log"
}

if [ "${HBM_NO_SYSTEM_DEPS:-0}" = 1 ]; then
    say "HBM_NO_SYSTEM_DEPS=1: installing nothing; tests that need a missing system package will be skipped"
    exit 0
fi

chromium_dep
slurm_up
exit 0
