#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on this machine for tests/test_slurm.py.
#
#   bash tests/slurm/up.sh [STATE_DIR]      (default STATE_DIR: /tmp/ddbench-slurm)
#   bash tests/slurm/down.sh [STATE_DIR]    stops it and restores /etc/slurm/slurm.conf
#
# Needs root. Installs Debian's slurmctld, slurmd, slurm-client and munge when missing.
# Controller and node are pinned to 127.0.0.1 / NodeName=localhost (nothing is looked up
# elsewhere); slurm.conf goes to Slurm's default location /etc/slurm/slurm.conf, because the
# executor plugin's job step clears every SLURM_* variable (SLURM_CONF included) inside jobs.
# An existing /etc/slurm/slurm.conf is kept as slurm.conf.ddbench-backup and restored by down.sh.
# No accounting database: job states come from squeue, so MinJobAge is large (1 day).
#
# Exit status: 0 cluster up (node idle); 3 not root; 4 packages missing and not installable;
# 5 another SLURM controller is already running here; 1 anything else (see STATE_DIR/*.log).
set -euo pipefail
STATE=${1:-/tmp/ddbench-slurm}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
BACKUP=$CONF_DIR/slurm.conf.ddbench-backup
MARKER="# ddbench one-node test cluster (tests/slurm/up.sh)"
here=$(cd "$(dirname "$0")" && pwd)

say() { echo "up.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  say "needs root (installs packages, writes $CONF, starts munged/slurmctld/slurmd)"
  exit 3
fi

# ------------------------------------------------------------------ packages
declare -A PKG=([slurmctld]=slurmctld [slurmd]=slurmd [sbatch]=slurm-client [squeue]=slurm-client
  [scontrol]=slurm-client [sinfo]=slurm-client [munged]=munge [munge]=munge)
missing=()
for cmd in "${!PKG[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]} and no apt-get to install them"
    exit 4
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_install() {
    # wait for a concurrent apt/dpkg instead of failing on its lock
    apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" \
      >"${TMPDIR:-/tmp}/ddbench-slurm-apt.log" 2>&1
  }
  if ! apt_install; then
    apt-get -o DPkg::Lock::Timeout=600 update >/dev/null 2>&1 || true
    if ! apt_install; then
      say "apt-get install ${missing[*]} failed (log: ${TMPDIR:-/tmp}/ddbench-slurm-apt.log)"
      exit 4
    fi
  fi
  # Debian's maintainer scripts may have started the packaged daemons: this test runs its own
  for d in slurmctld slurmd; do
    if command -v service >/dev/null 2>&1; then service "$d" stop >/dev/null 2>&1 || true; fi
  done
fi

# ------------------------------------------------------------------ not twice, not over a real one
if [ -f "$STATE/pids" ]; then
  say "stale cluster state in $STATE: stopping it first"
  bash "$here/down.sh" "$STATE" || true
fi
if scontrol ping >/dev/null 2>&1 && ! grep -qsF "$MARKER" "$CONF"; then
  say "a SLURM controller configured by $CONF already answers here; not touching it"
  exit 5
fi

mkdir -p "$STATE"/{ctld,spool}
: >"$STATE/pids"

# ------------------------------------------------------------------ munge
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile /etc/munge/munge.key >/dev/null
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chmod 0400 /etc/munge/munge.key
fi
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "munged already running: using it"
else
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  # -F: foreground (we keep its PID); --force: run as root with root-owned key and dirs
  setsid munged -F --force >"$STATE/munged.log" 2>&1 &
  echo "munged $!" >>"$STATE/pids"
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.1
  done
  munge -n | unmunge >/dev/null || { say "munged did not start (see $STATE/munged.log)"; exit 1; }
fi

# ------------------------------------------------------------------ slurm.conf
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
mkdir -p "$CONF_DIR"
if [ -f "$CONF" ] && ! grep -qsF "$MARKER" "$CONF" && [ ! -f "$BACKUP" ]; then
  cp -p "$CONF" "$BACKUP"
fi
cat >"$CONF" <<EOF
$MARKER
# Written by up.sh; down.sh restores the previous file (if any) from $BACKUP.
ClusterName=ddbench
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# no accounting database: the executor plugin reads job states from squeue, which keeps
# finished jobs for MinJobAge seconds
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=86400
SchedulerParameters=sched_interval=1
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
chmod 0644 "$CONF"

# ------------------------------------------------------------------ daemons
# -D: foreground (we keep the PIDs); -c: start from an empty job state
setsid slurmctld -D -c >"$STATE/slurmctld.out" 2>&1 &
echo "slurmctld $!" >>"$STATE/pids"
for _ in $(seq 100); do
  scontrol ping >/dev/null 2>&1 && break
  sleep 0.1
done
setsid slurmd -D -N localhost >"$STATE/slurmd.out" 2>&1 &
echo "slurmd $!" >>"$STATE/pids"

state=""
for _ in $(seq 300); do
  state=$(sinfo -h -N -n localhost -o %T 2>/dev/null | head -1 || true)
  case "$state" in
    idle*) break ;;
    down*|drain*) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  sleep 0.1
done
if [[ "$state" != idle* ]]; then
  say "node localhost is '${state:-unreachable}', not idle (logs in $STATE)"
  exit 1
fi
say "cluster up: node localhost idle, $cpus CPUs, ${mem_mb} MB (state in $STATE)"
