# PostgreSQL of the testbed: its own data directory and loopback port (sourced by up). PowerDNS and,
# later, mail-core and the billing ledger keep their databases here.
# shellcheck shell=bash

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

# The server runs as the postgres user, which may not be able to enter the checkout (a clone in a
# 0700 directory, say): its data and socket live in /tmp, one directory per testbed.
pg_home() { echo "/tmp/mpanel-testbed-pg-$(printf %s "$TESTBED_DIR" | cksum | cut -d' ' -f1)"; }

pg_ready() {
  [ -f "$TESTBED_DIR/postgres/port" ] \
    && "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$(cat "$TESTBED_DIR/postgres/port")"
}

# psql_ DATABASE ARGS...: psql as the superuser over loopback.
psql_() {
  local db=$1; shift
  PGOPTIONS="-c client_min_messages=warning" "$(pg_bin)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(cat "$TESTBED_DIR/postgres/port")" -U postgres -d "$db" "$@"
}

up_postgres() {
  local bin; bin=$(pg_bin)
  [ -n "$bin" ] || { log "PostgreSQL is not installed; run tests/testbed/install-deps"; exit 1; }
  if is_running postgres && pg_ready; then
    log "PostgreSQL already running; reusing it"
  else
    stop_daemon postgres
    local d=$TESTBED_DIR/postgres home port
    home=$(pg_home)
    rm -rf "$d" "$home"; mkdir -p "$d" "$home/run"
    port=$(freeport); echo "$port" >"$d/port"
    chown -R postgres:postgres "$home"; chmod 700 "$home"
    # PostgreSQL refuses to run as root: initdb and the server run as the postgres user
    setpriv --reuid=postgres --regid=postgres --init-groups "$bin/initdb" -D "$home/data" -U postgres \
      --auth=trust --encoding=UTF8 --no-instructions >"$TESTBED_DIR/postgres.log" 2>&1 \
      || fail postgres "initdb failed"
    # durability is not what the tests exercise: skip fsync for speed
    start_daemon postgres setpriv --reuid=postgres --regid=postgres --init-groups "$bin/postgres" -D "$home/data" \
      -p "$port" -k "$home/run" -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
      -c full_page_writes=off -c max_connections=300
    wait_for_daemon postgres 30 "PostgreSQL to accept connections" pg_ready
  fi
  local port; port=$(cat "$TESTBED_DIR/postgres/port")
  set_env 10-postgres \
    "PG_HOST=127.0.0.1" \
    "PG_PORT=$port" \
    "PG_SUPERUSER=postgres" \
    "PG_URL=postgres://postgres@127.0.0.1:$port/postgres"
}
