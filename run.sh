#!/usr/bin/env bash
# The main job: install what is missing, then run the default grid (config/config.yaml).
# Extra arguments go to snakemake, e.g. `bash run.sh --configfile config/smoke.yaml`.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo ">> installing Debian's dataset-fashion-mnist"
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo ">> Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set datasets.fashion_mnist.path" >&2
  fi
fi
.venv/bin/snakemake --cores all "$@"
echo
echo "Tables:  $(pwd)/results/tables/  (accuracy.md, accuracy.csv)"
echo "Report:  .venv/bin/snakemake --report results/report.html"
