#!/usr/bin/env bash
# The whole test suite against a real Postgres and a real Redis, started here on free ports and
# removed afterwards. Installs redis-server from Debian's packages when it is missing (needs root).
# Usage: npm test [-- bun test arguments, e.g. a file filter]
set -euo pipefail
cd "$(dirname "$0")/.."
BUN=./node_modules/.bin/bun
[ -x "$BUN" ] || { echo "run 'npm install' first" >&2; exit 1; }

if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing redis-server..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null
  else
    echo "redis-server is missing: apt-get install redis-server" >&2; exit 1
  fi
fi
# The console's browser tests (test/e2e/console.test.ts) drive Debian's chromium; without it they are skipped.
if ! command -v chromium >/dev/null && [ -z "${CHROMIUM_PATH:-}" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing chromium..."
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium could not be installed: the console's browser tests will be skipped" >&2
  else
    echo "chromium is missing (apt-get install chromium): the console's browser tests will be skipped" >&2
  fi
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PGBIN/initdb" ] || { echo "Postgres server binaries not found under /usr/lib/postgresql" >&2; exit 1; }

free_port() { "$BUN" -e 'const s=Bun.listen({hostname:"127.0.0.1",port:0,socket:{data(){}}});console.log(s.port);s.stop(true)'; }
WORK=$(mktemp -d /tmp/chat-test.XXXXXX)
chmod 755 "$WORK"
PGPORT=$(free_port)
REDISPORT=$(free_port)

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
  [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
  [ -d "$WORK/rcluster" ] && "$BUN" test/helpers/redis-cluster.ts stop "$WORK/rcluster" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A Redis Cluster (3 masters, 3 replicas: test/helpers/redis-cluster.ts), started while Postgres starts.
"$BUN" test/helpers/redis-cluster.ts start "$WORK/rcluster" >"$WORK/rcluster.urls" 2>"$WORK/rcluster.err" &
RCLUSTER_PID=$!
mkdir -p "$WORK/pg" "$WORK/pgsock"
[ "$(id -u)" = 0 ] && chown postgres "$WORK/pg" "$WORK/pgsock"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust -E UTF8 >/dev/null
# Durability settings stay at their defaults (fsync on): acknowledged means committed.
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pgsock/pg.log" -w -o "-p $PGPORT -k $WORK/pgsock -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
redis-server --port "$REDISPORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log" --dir "$WORK"
for _ in $(seq 50); do redis-cli -p "$REDISPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

wait "$RCLUSTER_PID" || { cat "$WORK/rcluster.err" >&2; echo "the Redis Cluster did not start" >&2; exit 1; }

export TEST_PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$REDISPORT"
export TEST_REDIS_PORT="$REDISPORT"
export TEST_REDIS_CLUSTER_URLS="$(cat "$WORK/rcluster.urls")"
echo "postgres on :$PGPORT, redis on :$REDISPORT, redis cluster on $TEST_REDIS_CLUSTER_URLS"
"$BUN" test --timeout 30000 "$@"
