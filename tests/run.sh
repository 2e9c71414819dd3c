#!/usr/bin/env bash
# The test command of the README, and exactly what CI runs (.ci/run).
# Installs what the suite needs on a fresh machine (Python packages, Debian's chromium for the
# browser test), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium not installed and not root: the browser test will be skipped" >&2
  fi
fi
# Two workers where there are two cores (one torch thread each, tests/conftest.py): 7 instead of
# 13-14 minutes on a 2-core AVX2 CPU. HIIF_TEST_WORKERS=0 runs in one process.
workers=${HIIF_TEST_WORKERS:-$(python -c "import os; print(2 if len(os.sched_getaffinity(0)) >= 2 else 0)")}
exec python -m pytest -q -p no:cacheprovider -n "$workers" "$@"
