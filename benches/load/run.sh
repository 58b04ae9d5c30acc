#!/usr/bin/env bash
# Load test of the quickstart over loopback with wrk: GET /me behind the
# layer (many users, each token repeated) against GET /healthz without it,
# both requested with the same script and headers.
#
# Loopback throughput on a shared machine drifts by tens of percent from one
# run to the next, so the two routes are measured in ROUNDS interleaved
# pairs (the order alternating) and the ratio reported is the median of the
# rounds' ratios. Bounded: each run lasts DURATION, there are 2 x ROUNDS of
# them, and the server is stopped at the end.
#
#   bash benches/load/run.sh            # SQLite
#   DATABASE=postgres bash benches/load/run.sh
#
# Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-1000}"
DURATION="${DURATION:-3s}"
ROUNDS="${ROUNDS:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
DATABASE="${DATABASE:-sqlite}"
ISSUER="https://load.ensure-user.test"

features=()
[ "$DATABASE" = postgres ] && features=(--features postgres)
cargo build --release --quiet "${features[@]}" --example quickstart --example load_tokens

work=$(mktemp -d)
schema=""
cleanup() {
  [ -n "${server:-}" ] && { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  [ -n "$schema" ] && psql "postgres://postgres@127.0.0.1:5432/test" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
target/release/examples/load_tokens "$work" "$USERS" "$ISSUER"
if [ "$DATABASE" = postgres ]; then
  schema="load_$(date +%s)"
  psql "postgres://postgres@127.0.0.1:5432/test" -qc "CREATE SCHEMA $schema"
  database_url="postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3D$schema"
else
  database_url="sqlite://$work/load.db?mode=rwc"
fi

CLERK_JWT_KEY="$(cat "$work/public.pem")" CLERK_ISSUER="$ISSUER" \
  DATABASE_URL="$database_url" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
  target/release/examples/quickstart >"$work/server.out" 2>"$work/server.err" &
server=$!

for _ in $(seq 1 50); do
  addr=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server.out" | head -n 1 || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/server.err" >&2; exit 1; }

# First sight of every user (creates the rows), then the measured runs.
TOKENS="$work/tokens.txt" TARGET_PATH=/me wrk -t1 -c8 -d3s -s benches/load/me.lua "$addr" >/dev/null

run() {
  local name=$1
  shift
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  if grep -q "Non-2xx" <<<"$out"; then
    echo "$name: some responses were not 2xx" >&2
    echo "$out" >&2
    exit 1
  fi
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  printf '%-9s %10s req/s   p50 %8s   p99 %8s\n' "$name" "$rps" "$p50" "$p99" >&2
  echo "$rps"
}

echo "quickstart load test: $USERS users, $CONNECTIONS connections, $THREADS wrk thread(s), $ROUNDS rounds of $DURATION per route, $DATABASE"
export TOKENS="$work/tokens.txt"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    health=$(TARGET_PATH=/healthz run /healthz -s benches/load/me.lua "$addr")
    me=$(TARGET_PATH=/me run /me -s benches/load/me.lua "$addr")
  else
    me=$(TARGET_PATH=/me run /me -s benches/load/me.lua "$addr")
    health=$(TARGET_PATH=/healthz run /healthz -s benches/load/me.lua "$addr")
  fi
  ratio=$(awk -v me="$me" -v health="$health" 'BEGIN { printf "%.1f", 100 * me / health }')
  echo "round $round: /me at $ratio% of /healthz" >&2
  ratios+=("$ratio")
done
median=$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "/me runs at $median% of /healthz (median of $ROUNDS rounds: ${ratios[*]})"
