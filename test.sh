#!/usr/bin/env bash
# The tests: install what is missing, lint the workflow and the code, then pytest
# (unit tests and the workflow tests on config/smoke.yaml). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash install.sh
# the report test renders the report in headless Chromium (skipped, with the reason, without it)
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo ">> installing Debian's chromium for the report test"
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo ">> chromium not installed"
fi
echo ">> snakemake --lint"
.venv/bin/snakemake --lint --configfile config/smoke.yaml
echo ">> snakefmt --check"
.venv/bin/snakefmt --check Snakefile rules
echo ">> ruff"
.venv/bin/ruff check src scripts tests bench
echo ">> pytest"
.venv/bin/python -m pytest -q "$@"
