# The billing bridge's ledger database on the testbed's PostgreSQL (sourced by up, after postgres.sh):
# mpanel_ledger, created once and kept across restarts of the bridge, for the sandbox. Tests make
# databases of their own from PG_URL. The tables belong to the superuser, who runs the migrations
# (MIGRATION_DATABASE_URL); the bridge works as the runtime role mpanel_bridge (DATABASE_URL), an
# ordinary login role the migrations grant what the bridge uses (MPANEL_BRIDGE_RUNTIME_ROLE).
# shellcheck shell=bash

LEDGER_DB=mpanel_ledger
LEDGER_RUNTIME_ROLE=mpanel_bridge

up_ledger() {
  if [ "$(psql_ postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$LEDGER_DB'")" != 1 ]; then
    log "creating the ledger database $LEDGER_DB"
    psql_ postgres -c "CREATE DATABASE $LEDGER_DB" || fail postgres "creating the database $LEDGER_DB failed"
  fi
  if [ "$(psql_ postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$LEDGER_RUNTIME_ROLE'")" != 1 ]; then
    log "creating the ledger's runtime role $LEDGER_RUNTIME_ROLE"
    # tests make it too, on the same server: a concurrent creation is as good as ours
    psql_ postgres -c "DO \$\$ BEGIN CREATE ROLE $LEDGER_RUNTIME_ROLE LOGIN;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END \$\$" \
      || fail postgres "creating the role $LEDGER_RUNTIME_ROLE failed"
  fi
  local server; server=127.0.0.1:$(cat "$TESTBED_DIR/postgres/port")
  set_env 60-ledger \
    "DATABASE_URL=postgres://$LEDGER_RUNTIME_ROLE@$server/$LEDGER_DB" \
    "MIGRATION_DATABASE_URL=postgres://postgres@$server/$LEDGER_DB" \
    "MPANEL_BRIDGE_RUNTIME_ROLE=$LEDGER_RUNTIME_ROLE"
}
