# namesilo-double, the testbed's Namesilo (sourced by up): a double of Namesilo's API built from
# its reference (tests/src/namesilo/double), run from this checkout's target/debug. It serves
# /api/{operation} (JSON only) and the /_ctl routes tests use, on loopback, with one account
# whose key is NAMESILO_KEY; tests make accounts of their own. Its state lives in memory only: a
# restart forgets every account, domain and transfer. A running double is reused even when its
# code changed since: kill it by the pid in namesilo.pid (or run down) to start the new one.
# shellcheck shell=bash

NAMESILO_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/namesilo-double

namesilo_ready() {
  [ -f "$TESTBED_DIR/namesilo/env" ] || return 1
  # shellcheck disable=SC1091
  (source "$TESTBED_DIR/namesilo/env" && curl -fs -o /dev/null "$NAMESILO_CTL_URL/accounts/$NAMESILO_KEY")
}

up_namesilo() {
  log "building namesilo-double"
  # --workspace, not -p mpanel-tests: dependencies get the workspace's features, as in the test
  # build, so they are compiled once for both
  (cd "$ROOT" && cargo build --locked --workspace --bin namesilo-double) ||
    { log "building namesilo-double failed"; exit 1; }
  local d=$TESTBED_DIR/namesilo
  if is_running namesilo && namesilo_ready; then
    log "namesilo-double already running; reusing it"
  else
    stop_daemon namesilo
    local port key
    rm -rf "$d"; mkdir -p "$d"
    port=$(freeport); key=$(openssl rand -hex 16)
    # the env file holds the API key: readable by its owner only
    (
      umask 077
      printf '%s\n' "NAMESILO_URL=http://127.0.0.1:$port/api" "NAMESILO_KEY=$key" \
        "NAMESILO_CTL_URL=http://127.0.0.1:$port/_ctl" >"$d/env"
    )
    # the key goes in the environment, not on a command line where ps shows it
    NAMESILO_DOUBLE_KEY=$key start_daemon namesilo \
      "$NAMESILO_BIN" --listen "127.0.0.1:$port" --balance 1000.00 --transfer-seconds 2
    wait_for_daemon namesilo 30 "namesilo-double's control API" namesilo_ready
  fi
  mapfile -t keys <"$d/env"
  (umask 077 && set_env 50-namesilo "${keys[@]}")
}
