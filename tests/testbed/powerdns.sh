# PowerDNS authoritative server of the testbed, on the testbed's PostgreSQL (sourced by up). The
# sqlite backend answers HTTP 500 under concurrent writes, so the pgsql backend is used.
# shellcheck shell=bash

pdns_api_ready() {
  [ -f "$TESTBED_DIR/powerdns/env" ] || return 1
  # shellcheck disable=SC1091
  (source "$TESTBED_DIR/powerdns/env" && curl -fs -H "X-API-Key: $PDNS_API_KEY" "$PDNS_API_URL/api/v1/servers/localhost")
}

pdns_dns_ready() {
  (source "$TESTBED_DIR/powerdns/env" && dig +time=1 +tries=1 @127.0.0.1 -p "${PDNS_DNS_ADDR##*:}" version.bind CH TXT)
}

up_powerdns() {
  command -v pdns_server >/dev/null || { log "PowerDNS is not installed; run tests/testbed/install-deps"; exit 1; }
  if is_running powerdns && pdns_api_ready; then
    log "PowerDNS already running; reusing it"
  else
    stop_daemon powerdns
    local d=$TESTBED_DIR/powerdns dns_port api_port key
    rm -rf "$d"; mkdir -p "$d"
    dns_port=$(freeport); api_port=$(freeport); key=$(openssl rand -hex 16)
    psql_ postgres -c "DROP DATABASE IF EXISTS pdns" -c "CREATE DATABASE pdns" >/dev/null
    psql_ pdns -f /usr/share/pdns-backend-pgsql/schema/schema.pgsql.sql >/dev/null
    # caches off: a test that changes a record asks the server straight after
    cat >"$d/pdns.conf" <<CONF
launch=gpgsql
gpgsql-host=127.0.0.1
gpgsql-port=$(cat "$TESTBED_DIR/postgres/port")
gpgsql-dbname=pdns
gpgsql-user=postgres
gpgsql-password=
local-address=127.0.0.1
local-port=$dns_port
api=yes
api-key=$key
webserver=yes
webserver-address=127.0.0.1
webserver-port=$api_port
webserver-allow-from=127.0.0.1,::1
socket-dir=$d
daemon=no
guardian=no
disable-syslog=yes
security-poll-suffix=
cache-ttl=0
negquery-cache-ttl=0
query-cache-ttl=0
zone-cache-refresh-interval=0
consistent-backends=yes
CONF
    printf '%s\n' "PDNS_API_URL=http://127.0.0.1:$api_port" "PDNS_API_KEY=$key" "PDNS_DNS_ADDR=127.0.0.1:$dns_port" \
      "PDNS_SERVER_ID=localhost" >"$d/env"
    start_daemon powerdns pdns_server --config-dir="$d"
    wait_for_daemon powerdns 30 "the PowerDNS API" pdns_api_ready
    wait_for_daemon powerdns 30 "PowerDNS to answer DNS" pdns_dns_ready
  fi
  mapfile -t keys <"$TESTBED_DIR/powerdns/env"
  set_env 20-powerdns "${keys[@]}"
}
