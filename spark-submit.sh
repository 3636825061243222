#!/usr/bin/env bash
# Submit a multiverse-etl job: ./spark-submit.sh <job> --env <env> [options]   (--help for the list)
# Locally it uses the project's .venv (made by `make setup`); on an EMR master node, python3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${MV_PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x "$here/.venv/bin/python" ]; then python="$here/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
export PYTHONPATH="$here/lib${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m multiverse_etl.submit "$@"
