#!/usr/bin/env bash
# Submit a multiverse-etl job: ./spark-submit.sh <job> --env <env> [options]   (--help for the list)
# Locally it uses the project's .venv (made by `make setup`); on an EMR master node, python3.
set -euo pipefail
# The checkout, wherever this is started from (any working directory, through a symlink too).
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
python="${MV_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
export PYTHONPATH="$here/lib${PYTHONPATH:+:$PYTHONPATH}"
# Where conf/ is and what relative lake paths are relative to, for the jobs spark-submit starts.
export MV_PROJECT_ROOT="$here"
exec "$python" -m multiverse_etl.submit "$@"
