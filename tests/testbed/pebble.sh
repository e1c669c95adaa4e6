# Pebble, the ACME test CA of the testbed (sourced by up). It validates DNS-01 challenges by asking the
# testbed's PowerDNS (-dnsserver) and serves its API over HTTPS with a certificate from a CA of the
# testbed's own, generated once per testbed directory. The issuing root of the certificates pebble
# hands out is another one: pebble makes it up at each start and serves it at /roots/0.
# shellcheck shell=bash

pebble_ready() {
  [ -f "$TESTBED_DIR/pebble/env" ] || return 1
  # shellcheck disable=SC1091
  (source "$TESTBED_DIR/pebble/env" && curl -fs -o /dev/null --cacert "$ACME_CA_BUNDLE" "$ACME_DIRECTORY")
}

# pebble_tls DIR: the CA (ca.pem, ca.key) and pebble's serving certificate (cert.pem, key.pem) in DIR,
# kept while they still verify for a day. The serving certificate must not be a CA: rustls refuses one.
pebble_tls() {
  local d=$1 tomorrow
  tomorrow=$(($(date +%s) + 86400))
  if [ -f "$d/ca.key" ] && [ -f "$d/key.pem" ] \
    && openssl verify -attime "$tomorrow" -CAfile "$d/ca.pem" "$d/cert.pem" >/dev/null 2>&1; then
    return 0
  fi
  log "generating pebble's TLS CA and serving certificate"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' \
    >"$d/server.ext"
  {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
      -subj "/CN=mpanel testbed pebble CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
      && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
        -keyout "$d/key.pem" -out "$d/server.csr" \
      && openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 365 \
        -extfile "$d/server.ext" -out "$d/cert.pem"
  } >"$TESTBED_DIR/pebble.log" 2>&1 || fail pebble "generating pebble's TLS certificates failed"
}

up_pebble() {
  command -v pebble >/dev/null || { log "pebble is not installed; run tests/testbed/install-deps"; exit 1; }
  local d=$TESTBED_DIR/pebble dns_addr validity=${PEBBLE_CERT_VALIDITY:-600}
  # shellcheck disable=SC1091
  dns_addr=$(source "$TESTBED_DIR/powerdns/env" && echo "$PDNS_DNS_ADDR")
  # a pebble started for an earlier PowerDNS would ask a port nobody listens on any more
  if is_running pebble && pebble_ready && [ "$(cat "$d/dnsserver" 2>/dev/null)" = "$dns_addr" ] \
    && [ "$(cat "$d/validity" 2>/dev/null)" = "$validity" ]; then
    log "pebble already running; reusing it"
  else
    stop_daemon pebble
    local acme_port mgmt_port http_port tls_port
    mkdir -p "$d"; rm -f "$d/env"
    pebble_tls "$d"
    acme_port=$(freeport); mgmt_port=$(freeport); http_port=$(freeport); tls_port=$(freeport)
    # httpPort and tlsPort are where the VA would connect for HTTP-01 and TLS-ALPN-01: loopback ports
    # nothing listens on. Certificates are valid for PEBBLE_CERT_VALIDITY seconds (default 600, short
    # enough for the tests to watch a renewal; the unit is seconds in pebble 2.4).
    cat >"$d/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$acme_port",
  "managementListenAddress": "127.0.0.1:$mgmt_port",
  "certificate": "$d/cert.pem",
  "privateKey": "$d/key.pem",
  "httpPort": $http_port,
  "tlsPort": $tls_port,
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false,
  "certificateValidityPeriod": $validity
}}
JSON
    printf '%s\n' "ACME_DIRECTORY=https://127.0.0.1:$acme_port/dir" "ACME_CA_BUNDLE=$d/ca.pem" \
      "ACME_ROOTS_URL=https://127.0.0.1:$mgmt_port/roots/0" "ACME_LOG=$TESTBED_DIR/pebble.log" >"$d/env"
    echo "$dns_addr" >"$d/dnsserver"
    echo "$validity" >"$d/validity"
    # no random sleep before validating, no nonces rejected at random, no authorization reused
    start_daemon pebble env PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
      pebble -config "$d/pebble.json" -dnsserver "$dns_addr"
    wait_for_daemon pebble 30 "pebble's ACME directory" pebble_ready
  fi
  mapfile -t keys <"$TESTBED_DIR/pebble/env"
  set_env 30-pebble "${keys[@]}"
}
