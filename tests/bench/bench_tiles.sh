#!/usr/bin/env bash
# CityHex against tipg on the tile benchmark kit (../shared/bench), all in one run:
#
#   tests/bench/bench_tiles.sh            # from the repository root; ~20 minutes
#
# 1. the kit's cluster and synthetic city (pg.sh, citydata.py; loaded once, kept);
# 2. the kit's assets/incidents get the indexed 3857 copy a CityHex import makes
#    (bench_tiles.py prepare-kit); CityHex serves them through kit_catalog.toml;
# 3. CityHex with its tile cache OFF (CITYHEX_TILE_CACHE_MB=0), WORKERS uvicorn workers, is
#    the server under test of the kit's compare.sh: every tile of the list, c=8 and 32,
#    tipg and CityHex alternating, database-only anchor, the kit's report;
# 4. z14-16 only (where the issue sets its targets): the kit's tiles.py run with
#    --zooms 14-16 for tipg and uncached CityHex alternating, the kit's dbtiles.py on the same
#    tiles, reported by the kit's report.py;
#    and once more for incidents on the z14-16 tiles where tipg's 10,000-feature limit cuts
#    nothing (so both serve exactly the same rows);
# 5. CityHex with its cache ON (warmed by eight passes), the whole list at c=8 and 32.
# Every timing step holds /tmp/cityhex-bench.lock (flock -o: servers never inherit it).
# Results: $OUT (report-*.md).
# Knobs: WORKERS=2 (CityHex), TIPG_WORKERS=1 (kit default), RUNS=2, KEEP_RUNNING=0, OUT,
# DB_TUNED=1: (re)start the kit's cluster with the server environment CityHex's own embedded
# cluster runs with (layers/embedded.py SERVER_ENVIRONMENT: backends keep freed memory);
# tipg, CityHex and the database-only anchor all use that same database.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${KIT:-$ROOT/../shared/bench}
PGDIR=${PGDIR:-/tmp/benchpg}
PGPORT=${PGPORT:-55432}
TIPG_PORT=${TIPG_PORT:-8081}
WORKERS=${WORKERS:-2}
RUNS=${RUNS:-2}
KEEP_RUNNING=${KEEP_RUNNING:-0}
OUT=${OUT:-/tmp/bench-results/cityhex-tiles-$(date +%Y%m%d-%H%M%S)}
VENV=${BENCH_VENV:-/tmp/venv-bench}
LOCK=/tmp/cityhex-bench.lock
PY=$ROOT/.venv/bin/python
mkdir -p "$OUT"
log() { echo "[bench_tiles $(date +%H:%M:%S)] $*" >&2; }

# --- 1. kit database and data (the kit's own scripts)
if ! "$VENV/bin/python" -c "import psycopg, numpy" >/dev/null 2>&1; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$KIT/requirements.txt"
fi
DB_TUNED=${DB_TUNED:-0}
if [ "$DB_TUNED" = 1 ]; then
  "$KIT/pg.sh" stop "$PGDIR" "$PGPORT" > /dev/null 2>&1 || true
  TUNABLES=$("$PY" -c "from layers.db.embedded import SERVER_ENVIRONMENT as e; print(e['GLIBC_TUNABLES'])")
  URL=$(env GLIBC_TUNABLES="$TUNABLES" "$KIT/pg.sh" start "$PGDIR" "$PGPORT")
else
  URL=$("$KIT/pg.sh" start "$PGDIR" "$PGPORT")
fi
if [ "$(psql "$URL" -XAtc "SELECT count(*) FROM assets" 2>/dev/null || echo 0)" != 300000 ]; then
  log "loading the kit's city"
  flock -o "$LOCK" "$VENV/bin/python" "$KIT/citydata.py" --url "$URL" --scale 1 --json "$OUT/load.json"
fi

# --- 2. CityHex's 3857 copy on the kit's tables
"$PY" "$ROOT/tests/bench/bench_tiles.py" prepare-kit --url "$URL"

# --- CityHex server helpers
PORT=$("$PY" -c "from layers.db.embedded import free_port; print(free_port())")
SUT_PID=""
start_cityhex() {  # $1 = cache MB
  CITYHEX_DATABASE_URL=$URL CITYHEX_CATALOG=$ROOT/tests/bench/kit_catalog.toml \
    CITYHEX_TILE_CACHE_MB=$1 "$ROOT/.venv/bin/uvicorn" spatial_api.app:create_app --factory \
    --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" --log-level warning --no-access-log \
    > "$OUT/cityhex-$1.log" 2>&1 < /dev/null &
  SUT_PID=$!
  for _ in $(seq 1 120); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
    sleep 0.5
  done
  log "CityHex did not start"; cat "$OUT/cityhex-$1.log" >&2; exit 1
}
stop_cityhex() {
  [ -n "$SUT_PID" ] && kill -TERM "$SUT_PID" 2>/dev/null && wait "$SUT_PID" 2>/dev/null || true
  SUT_PID=""
}
finish() {
  stop_cityhex
  if [ "$KEEP_RUNNING" != 1 ]; then
    "$KIT/peer_tipg.sh" stop "$TIPG_PORT" || true
    "$KIT/pg.sh" stop "$PGDIR" "$PGPORT" || true
  fi
}
trap finish EXIT
SUT="http://127.0.0.1:$PORT/tiles/{table}/{z}/{x}/{y}.mvt"

# --- 3. the kit's full comparison, CityHex uncached (tipg started here, outside any lock,
# so that no server inherits the lock's file descriptor; compare.sh finds it running)
"$KIT/peer_tipg.sh" "$URL" "$TIPG_PORT" > /dev/null
start_cityhex 0
log "compare.sh: tipg vs CityHex (cache off, $WORKERS workers)"
flock -o "$LOCK" env KEEP_RUNNING=1 RUNS="$RUNS" SUT_TEMPLATE="$SUT" SUT_NAME=cityhex-nocache \
  SUT_PID="$SUT_PID" OUT="$OUT/compare" "$KIT/compare.sh" > "$OUT/compare.log" 2>&1
cp "$OUT/compare/report.md" "$OUT/report-all-zooms.md"

# --- 4. z14-16: tipg and uncached CityHex alternating, and the database alone
TIPG_PID=$(cat "/tmp/tipg-$TIPG_PORT.pid")
PGPID=$(head -1 "$PGDIR/postmaster.pid")
server() {  # $1 = tipg|cityhex-nocache, $2 = layer: sets tmpl (tile URL) and pid (its process)
  if [ "$1" = tipg ]; then
    tmpl="http://127.0.0.1:$TIPG_PORT/collections/public.$2/tiles/WebMercatorQuad/{z}/{x}/{y}"
    pid=$TIPG_PID
  else
    tmpl=${SUT//\{table\}/$2}; pid=$SUT_PID
  fi
}
Z=$OUT/z14-16.jsonl
: > "$Z"
for layer in assets incidents; do
  for c in 8 32; do
    for run in $(seq 1 "$RUNS"); do
      for srv in tipg cityhex-nocache; do
        server "$srv" "$layer"
        warm=(); [ "$run" = 1 ] && warm=(--warm)
        log "z14-16 $srv $layer c=$c run $run"
        flock -o "$LOCK" "$VENV/bin/python" "$KIT/tiles.py" run --template "$tmpl" --zooms 14-16 \
          -c "$c" "${warm[@]}" --cpu-pid "$pid" --cpu-pid "$PGPID" \
          --label "$srv/$layer/c$c/r$run" --json-out "$Z" > /dev/null
      done
    done
  done
  for sql in tipg plain; do
    for c in 8 32; do
      log "z14-16 database only $layer sql=$sql c=$c"
      flock -o "$LOCK" "$VENV/bin/python" "$KIT/dbtiles.py" --url "$URL" --table "$layer" \
        --sql "$sql" -c "$c" --zooms 14-16 --warm --label "db-$sql/$layer/c$c" --json-out "$Z" \
        > /dev/null
    done
  done
done
"$VENV/bin/python" "$KIT/report.py" "$Z" > "$OUT/report-z14-16.md"

# --- 4b. incidents z14-16 where both serve exactly the same rows: leave out the tiles over
# tipg's 10,000-feature limit (tipg cuts them, CityHex shows them as clusters)
SAME=$OUT/incidents-z14-16-same-rows.txt
awk -F, 'NR > 1 && $1 >= 14 && $8 < 10000 {print $1 "/" $2 "/" $3}' \
  "$OUT/compare/survey-tipg-incidents.csv" > "$SAME"
S=$OUT/same-rows.jsonl
: > "$S"
for c in 8 32; do
  for run in $(seq 1 "$RUNS"); do
    for srv in tipg cityhex-nocache; do
      server "$srv" incidents
      log "same rows $srv incidents c=$c run $run"
      flock -o "$LOCK" "$VENV/bin/python" "$KIT/tiles.py" run --template "$tmpl" --tiles "$SAME" \
        -c "$c" --cpu-pid "$pid" --cpu-pid "$PGPID" --label "$srv/incidents/c$c/r$run" \
        --json-out "$S" > /dev/null
    done
  done
done
"$VENV/bin/python" "$KIT/report.py" "$S" > "$OUT/report-same-rows.md"
stop_cityhex

# --- 5. CityHex with a warm cache, the whole list
start_cityhex 1024
W=$OUT/warm-cache.jsonl
: > "$W"
for layer in assets incidents; do
  tmpl=${SUT//\{table\}/$layer}
  for _ in $(seq 1 8); do  # each worker caches what it serves: warm both
    "$VENV/bin/python" "$KIT/tiles.py" run --template "$tmpl" -c 32 > /dev/null
  done
  for c in 8 32; do
    log "warm cache $layer c=$c"
    flock -o "$LOCK" "$VENV/bin/python" "$KIT/tiles.py" run --template "$tmpl" -c "$c" \
      -n $((5 * $(grep -c . "$KIT/tiles.txt"))) --cpu-pid "$SUT_PID" \
      --label "cityhex-cache/$layer/c$c/r1" --json-out "$W" > /dev/null
  done
done
"$VENV/bin/python" "$KIT/report.py" "$W" > "$OUT/report-warm-cache.md"

for r in all-zooms z14-16 same-rows warm-cache; do
  echo; echo "# $r"; cat "$OUT/report-$r.md"
done
log "results in $OUT"
