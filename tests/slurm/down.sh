#!/usr/bin/env bash
# Stop the one-node test cluster started by up.sh and restore /etc/slurm/slurm.conf.
#
#   bash tests/slurm/down.sh [STATE_DIR]    (default STATE_DIR: /tmp/ddbench-slurm)
#
# Stops exactly the daemons up.sh started, by the PIDs it recorded in STATE_DIR/pids.
set -uo pipefail
STATE=${1:-/tmp/ddbench-slurm}
CONF=/etc/slurm/slurm.conf
BACKUP=/etc/slurm/slurm.conf.ddbench-backup
MARKER="# ddbench one-node test cluster (tests/slurm/up.sh)"

say() { echo "down.sh: $*" >&2; }

if [ -f "$STATE/pids" ]; then
  # cancel leftover jobs while the controller still runs
  if grep -qsF "$MARKER" "$CONF"; then
    scancel --quiet --partition=debug >/dev/null 2>&1 || true
  fi
  # slurmd first, then the controller, then munged (reverse start order)
  tac "$STATE/pids" | while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$pid" 2>/dev/null; then
        say "$name ($pid) ignored SIGTERM: SIGKILL"
        kill -KILL "$pid" 2>/dev/null
      fi
    fi
  done
  rm -f "$STATE/pids"
fi

if grep -qsF "$MARKER" "$CONF"; then
  if [ -f "$BACKUP" ]; then
    mv -f "$BACKUP" "$CONF"
    say "restored the previous $CONF"
  else
    rm -f "$CONF"
  fi
fi
exit 0
