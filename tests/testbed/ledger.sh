# The billing bridge's ledger database on the testbed's PostgreSQL (sourced by up, after postgres.sh):
# mpanel_ledger, created once and kept across restarts of the bridge, for the sandbox. Tests make
# databases of their own from PG_URL.
# shellcheck shell=bash

LEDGER_DB=mpanel_ledger

up_ledger() {
  if [ "$(psql_ postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$LEDGER_DB'")" != 1 ]; then
    log "creating the ledger database $LEDGER_DB"
    psql_ postgres -c "CREATE DATABASE $LEDGER_DB" || fail postgres "creating the database $LEDGER_DB failed"
  fi
  set_env 60-ledger "DATABASE_URL=postgres://postgres@127.0.0.1:$(cat "$TESTBED_DIR/postgres/port")/$LEDGER_DB"
}
