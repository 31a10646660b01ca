#!/usr/bin/env bash
# Time a no-op rerun (dry run) of a finished grid.
#   bash bench/noop_rerun.sh WORKDIR [CONFIG]   (default CONFIG: config/config.yaml)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:?usage: noop_rerun.sh WORKDIR [CONFIG]}
config=${2:-$root/config/config.yaml}
for i in 1 2 3; do
  start=$(date +%s.%N)
  "$root/.venv/bin/snakemake" --snakefile "$root/Snakefile" --directory "$work" --configfile "$config" -n > /tmp/noop.$$ 2>&1
  end=$(date +%s.%N)
  grep -q "Nothing to be done" /tmp/noop.$$ && state="nothing to do" || state="WORK PENDING"
  echo "no-op rerun $i: $(echo "$end - $start" | bc) s ($state)"
done
rm -f /tmp/noop.$$
