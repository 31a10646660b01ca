#!/usr/bin/env bash
# Creates .venv (if missing) and installs ddbench with the torch build this machine can install.
# Sourced by run.sh and test.sh; safe to run again (it only installs what is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
if ! "$VPY" -c "import torch, torchvision" >/dev/null 2>&1; then
  # torch + torchvision builds known to install (from the local wheel cache where present):
  # x86_64 -> 2.14.1 / 0.29.1, aarch64 -> 2.9.1 / 0.24.1 (timm needs torchvision).
  case "$(uname -m)" in
    aarch64|arm64) TORCH="torch==2.9.1 torchvision==0.24.1" ;;
    *) TORCH="torch==2.14.1 torchvision==0.29.1" ;;
  esac
  echo ">> installing $TORCH"
  "$VPY" -m pip install -q --upgrade pip
  "$VPY" -m pip install -q $TORCH
fi
if ! "$VPY" -c "import ddbench, snakemake, pytest, snakefmt" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.ddbench-installed ] || [ requirements.lock -nt .venv/.ddbench-installed ]; then
  # every package at the version of requirements.lock (the same on every machine), then
  # ddbench itself without resolving again
  echo ">> installing the stack of requirements.lock (snakemake, slurm plugin, timm, diffusers, ...)"
  "$VPY" -m pip install -q -r requirements.lock
  "$VPY" -m pip install -q --no-deps -e .
  touch .venv/.ddbench-installed
fi
