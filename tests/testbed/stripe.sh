# stripe-mock, the testbed's Stripe (sourced by up): Stripe's own mock of its API, built once from
# the Go module proxy and cached. It answers every /v1 route with the shape of Stripe's OpenAPI
# spec and checks the parameters against it, but keeps no state (a created object is not there on
# a later GET). Webhooks are not sent by it: tests sign their own with STRIPE_WEBHOOK_SECRET, which
# is made once per testbed and kept in $TESTBED_DIR/stripe/webhook-secret.
# shellcheck shell=bash

STRIPE_MOCK_VERSION=0.203.0
STRIPE_MOCK_BIN=${MPANEL_STRIPE_MOCK_BIN:-$CACHE/stripe-mock-$STRIPE_MOCK_VERSION/stripe-mock}
STRIPE_SECRET_KEY=sk_test_123

ensure_stripe_mock() {
  [ -x "$STRIPE_MOCK_BIN" ] && return 0
  command -v go >/dev/null || { log "go is needed to build stripe-mock; run tests/testbed/install-deps"; exit 1; }
  log "building stripe-mock v$STRIPE_MOCK_VERSION from the Go module proxy (once)"
  mkdir -p "$(dirname "$STRIPE_MOCK_BIN")"
  (
    flock 9
    # another testbed may have built it while this one waited for the lock
    [ -x "$STRIPE_MOCK_BIN" ] && exit 0
    gobin=$(mktemp -d)
    GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod CGO_ENABLED=0 GOBIN=$gobin \
      go install -trimpath -ldflags "-s -w" "github.com/stripe/stripe-mock@v$STRIPE_MOCK_VERSION" \
      >"$CACHE/build-stripe-mock.log" 2>&1 || { tail -n 40 "$CACHE/build-stripe-mock.log" >&2; rm -rf "$gobin"; exit 1; }
    mv "$gobin/stripe-mock" "$STRIPE_MOCK_BIN"
    rm -rf "$gobin"
  ) 9>"$CACHE/build-stripe-mock.lock"
}

stripe_ready() {
  [ -f "$TESTBED_DIR/stripe/port" ] || return 1
  curl -fs -o /dev/null -u "$STRIPE_SECRET_KEY:" "http://127.0.0.1:$(cat "$TESTBED_DIR/stripe/port")/v1/customers"
}

up_stripe() {
  ensure_stripe_mock
  local d=$TESTBED_DIR/stripe
  mkdir -p "$d"
  if is_running stripe-mock && stripe_ready; then
    log "stripe-mock already running; reusing it"
  else
    stop_daemon stripe-mock
    local port; port=$(freeport); echo "$port" >"$d/port"
    # -http-addr alone leaves its HTTPS listener on the default *:12112: that one goes to a loopback
    # port of its own, unused
    start_daemon stripe-mock "$STRIPE_MOCK_BIN" -http-addr "127.0.0.1:$port" -https-addr "127.0.0.1:$(freeport)"
    wait_for_daemon stripe-mock 30 "stripe-mock's /v1/customers" stripe_ready
  fi
  # the webhook secret: made once per testbed, readable by its owner only
  if [ ! -s "$d/webhook-secret" ]; then
    (umask 077 && echo "whsec_$(openssl rand -hex 24)" >"$d/webhook-secret")
  fi
  (
    umask 077
    set_env 60-stripe "STRIPE_API_BASE=http://127.0.0.1:$(cat "$d/port")" "STRIPE_SECRET_KEY=$STRIPE_SECRET_KEY" \
      "STRIPE_WEBHOOK_SECRET=$(cat "$d/webhook-secret")"
  )
}
