#!/usr/bin/env bash
# The end-to-end demo: sample API in the background, the whole pipeline, a summary and gold rows.
#   scripts/demo.sh local      lake in ./lake (a folder)
#   scripts/demo.sh local-s3   lake on a local S3 endpoint (moto server) started here
# DEMO_SCALE (default 2000) apprenticeships; DEMO_SEED (default 7).
set -euo pipefail
cd "$(dirname "$0")/.."
env_name="${1:-local}"
py=.venv/bin/python
scale="${DEMO_SCALE:-2000}"
seed="${DEMO_SEED:-7}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_line() {  # file pattern seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do
    if grep -q "$2" "$1" 2>/dev/null; then grep -m1 "$2" "$1"; return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

echo "== starting the sample API (scale $scale, seed $seed)"
$py -m sample_api serve --port 0 --scale "$scale" --seed "$seed" > "$work/api.log" 2>&1 &
pids+=($!)
api_url="$(wait_for_line "$work/api.log" "listening on" 120 | sed -E 's/.*listening on (http[^ ]+).*/\1/')"
echo "   sample API at $api_url"

extra=()
if [ "$env_name" = "local-s3" ]; then
  port="$($py -c 'from multiverse_etl.devtools.local_s3 import free_port; print(free_port())')"
  echo "== starting the local S3 endpoint on 127.0.0.1:$port"
  $py -m multiverse_etl.devtools.local_s3 --port "$port" > "$work/s3.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/s3.log" "listening on" 60 >/dev/null
  extra+=(--set "s3.endpoint_url=http://127.0.0.1:$port")
fi

echo "== running the pipeline (extract, then transform) on env $env_name"
# The console shows the run's own lines and summaries (Spark's own output goes to logs/). The job also prints
# its summaries plainly on stdout for scripts: the demo drops that second copy (the log lines above have it).
./spark-submit.sh pipeline --env "$env_name" --api-url "$api_url" --show 5 "${extra[@]}" \
  | grep -vE '^(extract committed run |run {2,}entity|-{20,}$|[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6} {2}|runs loaded: )'
