#!/usr/bin/env bash
# Runs every ```sh block of migrations-guide.md, in order and in one shell, against a live
# Switchyard (backend + gateway) on ephemeral loopback ports, with a fresh database. A block that
# fails (a command, or a `jq -e` check) fails the run, so the guide cannot drift from the code.
# Needs: the switchyard binary (SWITCHYARD_BIN, default target/debug/switchyard), curl, jq,
# grpcurl, python3 with venv and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SWITCHYARD_BIN:-target/debug/switchyard}
TMP=$(mktemp -d)
PID=
LEGACY_PID=
cleanup() {
  for p in $PID $LEGACY_PID; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

"$BIN" --grpc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
  --database "sqlite://$TMP/switchyard.db" --upload-dir "$TMP/uploads" >"$TMP/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
  grep -q 'REST gateway' "$TMP/server.log" && break
  sleep 0.1
done
GRPC=$(sed -n 's/^ *gRPC backend : \([0-9.:]*\).*/\1/p' "$TMP/server.log")
GW=$(sed -n 's/^ *REST gateway : \(http[^ ]*\).*/\1/p' "$TMP/server.log")
if [ -z "$GRPC" ] || [ -z "$GW" ]; then
  echo "switchyard did not start:"; cat "$TMP/server.log"; exit 1
fi

# The old API the guide migrates from: the legacy REST service, on the same database.
"$BIN" legacy-rest --listen 127.0.0.1:0 --database "sqlite://$TMP/switchyard.db" \
  --upload-dir "$TMP/legacy-uploads" >"$TMP/legacy.log" 2>&1 &
LEGACY_PID=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$TMP/legacy.log" && break
  sleep 0.1
done
LEGACY=$(sed -n 's/^legacy REST API listening on \(http[^ ]*\).*/\1/p' "$TMP/legacy.log")
[ -n "$LEGACY" ] || { echo "the legacy service did not start:"; cat "$TMP/legacy.log"; exit 1; }

# Background processes a block starts end with the guide, whatever happens.
echo 'trap '"'"'kill $(jobs -p) 2>/dev/null || true'"'"' EXIT' >"$TMP/guide.sh"
awk '/^```sh$/ { on = 1; n++; print "echo \"--- guide block " n "\""; next }
     /^```$/   { on = 0; next }
     on        { print }' migrations-guide.md >>"$TMP/guide.sh"
blocks=$(grep -c '^echo "--- guide block' "$TMP/guide.sh")
echo "running $blocks blocks of migrations-guide.md against $GW and $GRPC"
(export GW GRPC LEGACY SY="$BIN"; cd "$PWD" && bash -euo pipefail "$TMP/guide.sh")
echo "migrations-guide.md: all $blocks blocks ran"
