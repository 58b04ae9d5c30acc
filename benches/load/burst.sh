#!/usr/bin/env bash
# A sign-up burst through the quickstart over loopback: USERS users the
# server has never seen each make exactly one request (their first: a token
# verification, a read and an insert), CONCURRENCY at a time, sent by
# examples/load_burst.rs over keep-alive connections.
#
# Each round starts a fresh server on a fresh database (a new PostgreSQL
# schema, or a new SQLite file) and sends the same tokens, minted once
# beforehand; the round fails unless every request answered 200, with one
# distinct local id per user, and the users table holds exactly USERS rows.
# Throughput on a shared machine drifts by tens of percent from one minute
# to the next, so the median of ROUNDS rounds is reported. Bounded: USERS
# requests per round, each round given at most TIMEOUT, the server stopped
# after each round and the schema dropped at the end.
#
#   bash benches/load/burst.sh            # SQLite
#   DATABASE=postgres bash benches/load/burst.sh
#
# The script stops at the first failed round (any request not answered 200,
# a missing or duplicate row, an error in the server's log) and exits
# non-zero; with KEEP_GOING=1 it runs every round first.
#
# PG_OPTIONS adds to the connection's options, e.g.
# PG_OPTIONS=-csynchronous_commit%3Doff (a diagnosis: commits not flushed).
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS="${USERS:-20000}"
CONCURRENCY="${CONCURRENCY:-64}"
ROUNDS="${ROUNDS:-5}"
TIMEOUT="${TIMEOUT:-120}"
KEEP_GOING="${KEEP_GOING:-0}"
DATABASE="${DATABASE:-sqlite}"
PG_OPTIONS="${PG_OPTIONS:-}"
PG="postgres://postgres@127.0.0.1:5432/test"
ISSUER="https://load.ensure-user.test"

case "$DATABASE" in
  sqlite | postgres) ;;
  *) echo "DATABASE must be sqlite or postgres, got $DATABASE" >&2; exit 2 ;;
esac

# One build for both databases: the quickstart's SQLite path is the same
# code with or without the postgres feature.
cargo build --release --quiet --features postgres \
  --example quickstart --example load_tokens --example load_burst

work=$(mktemp -d)
schema=""
server=""
stop_server() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
drop_schema() {
  if [ -n "$schema" ]; then
    psql "$PG" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true
    schema=""
  fi
}
cleanup() {
  stop_server
  drop_schema
  rm -rf "$work"
}
trap cleanup EXIT

# Signed before anything is measured.
target/release/examples/load_tokens "$work" "$USERS" "$ISSUER"

echo "sign-up burst: $USERS new users per round, concurrency $CONCURRENCY, $ROUNDS rounds, $DATABASE${PG_OPTIONS:+ ($PG_OPTIONS)}"
results=()
failed=0
for round in $(seq 1 "$ROUNDS"); do
  sqlite_url=()
  if [ "$DATABASE" = postgres ]; then
    schema="burst_$(date +%s)_$round"
    psql "$PG" -qc "CREATE SCHEMA $schema"
    database_url="$PG?options=-csearch_path%3D$schema${PG_OPTIONS:+%20$PG_OPTIONS}"
  else
    rm -f "$work"/burst.db*
    database_url="sqlite://$work/burst.db?mode=rwc"
    sqlite_url=("$database_url")
  fi

  : >"$work/server.out"
  CLERK_JWT_KEY="$(cat "$work/public.pem")" CLERK_ISSUER="$ISSUER" \
    DATABASE_URL="$database_url" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
    target/release/examples/quickstart >"$work/server.out" 2>"$work/server.err" &
  server=$!
  addr=""
  for _ in $(seq 1 100); do
    addr=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/server.out" | head -n 1 || true)
    [ -n "$addr" ] && break
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "the quickstart did not start:" >&2; cat "$work/server.err" >&2; exit 1; }

  ok=1
  line=$(timeout "$TIMEOUT" target/release/examples/load_burst \
    "$addr" "$work/tokens.txt" "$CONCURRENCY" "${sqlite_url[@]}" 2>"$work/client.err") || ok=0
  stop_server
  [ -n "$line" ] || line="users=$USERS (no result: the client failed or ran out of its $TIMEOUT s)"

  if [ "$DATABASE" = postgres ]; then
    rows=$(psql "$PG" -Atc "SELECT count(*) FROM $schema.users")
    distinct=$(psql "$PG" -Atc "SELECT count(DISTINCT clerk_id) FROM $schema.users")
    drop_schema
    if [ "$rows" != "$USERS" ] || [ "$distinct" != "$USERS" ]; then
      echo "round $round: $USERS users, but the users table holds $rows rows ($distinct distinct)" >&2
      ok=0
    fi
    line="${line/rows=unchecked/rows=$rows}"
  fi
  # Slow statements (over sqlx's 1 s threshold) are logged as warnings:
  # counted, not failed on. An error is a failure.
  slow=$(grep -c "slow statement" "$work/server.err" || true)
  [ "$slow" -gt 0 ] && echo "round $round: the server logged $slow slow statements (over 1 s)" >&2
  if grep -q "ERROR" "$work/server.err"; then
    ok=0
  fi
  echo "round $round: $line"
  if [ "$ok" = 0 ]; then
    failed=$((failed + 1))
    echo "round $round failed:" >&2
    grep -v "^users=" "$work/client.err" | head -n 20 >&2 || true
    grep "ERROR" "$work/server.err" | head -n 5 >&2 || true
    [ "$KEEP_GOING" = 1 ] || exit 1
  fi
  results+=("$line")
done

field() { printf '%s\n' "${results[@]}" | grep -o "$1=[0-9.]*" | cut -d= -f2 | sort -n; }
median() { awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rates=$(field users_per_s)
errors=$(field errors | awk '{ s += $1 } END { print s + 0 }')
if [ "$failed" = 0 ]; then
  checked="0 errors, $USERS rows each round"
else
  checked="$failed of $ROUNDS rounds FAILED, $errors failed requests"
fi
echo "$DATABASE: median $(median <<<"$rates") new users/s (rounds $(head -n 1 <<<"$rates")–$(tail -n 1 <<<"$rates")), \
p50 $(field p50_us | median) µs, p99 $(field p99_us | median) µs (medians over $ROUNDS rounds), \
$USERS users per round, concurrency $CONCURRENCY, $checked"
[ "$failed" = 0 ]
