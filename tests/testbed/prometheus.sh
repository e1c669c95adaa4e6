# Prometheus of the testbed (sourced by up): loopback only, scraping every second whatever is
# registered at run time by a JSON file in $TESTBED_DIR/prometheus/targets (file_sd), and loading
# monitoring/alerts.yaml. operator-*.json targets are scraped plainly; bridge-*.json targets with the
# bearer token PROMETHEUS_BRIDGE_TOKEN, which a bridge accepts once its ledger holds it as a
# read-only admin API token.
# shellcheck shell=bash

prometheus_ready() {
  [ -f "$TESTBED_DIR/prometheus/port" ] && curl -fs -o /dev/null "http://127.0.0.1:$(cat "$TESTBED_DIR/prometheus/port")/-/ready"
}

# prometheus_config DIR: the configuration for the data, targets and token in DIR.
prometheus_config() {
  local d=$1
  cat <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: ["$ROOT/monitoring/alerts.yaml"]
scrape_configs:
  - job_name: mpanel-operator
    file_sd_configs: [{files: ["$d/targets/operator-*.json"], refresh_interval: 5s}]
  - job_name: mpanel-billing-bridge
    authorization: {credentials_file: "$d/bridge-token"}
    file_sd_configs: [{files: ["$d/targets/bridge-*.json"], refresh_interval: 5s}]
YAML
}

# prometheus_target NAME ADDRESS: has the testbed's Prometheus scrape ADDRESS (host:port) from now
# on, as the file targets/NAME.json (NAME starts with operator- or bridge-).
prometheus_target() {
  local d=$TESTBED_DIR/prometheus/targets
  printf '[{"targets": ["%s"], "labels": {"testbed": "%s"}}]\n' "$2" "$1" >"$d/.$1.json.tmp"
  mv -f "$d/.$1.json.tmp" "$d/$1.json"
}

up_prometheus() {
  command -v prometheus >/dev/null || { log "Prometheus is not installed; run tests/testbed/install-deps"; exit 1; }
  local d=$TESTBED_DIR/prometheus
  mkdir -p "$d/targets" "$d/data"
  [ -s "$d/bridge-token" ] || (umask 077 && openssl rand -hex 24 >"$d/bridge-token")
  prometheus_config "$d" >"$d/prometheus.yml.new"
  # a Prometheus started with another configuration (an older checkout's) is replaced
  if is_running prometheus && prometheus_ready && cmp -s "$d/prometheus.yml.new" "$d/prometheus.yml"; then
    log "Prometheus already running; reusing it, with the rules reloaded"
    rm -f "$d/prometheus.yml.new"
    kill -HUP "$(cat "$(pidfile prometheus)")"
  else
    stop_daemon prometheus
    # what was registered before is gone with the processes of an earlier testbed
    rm -f "$d"/targets/*.json
    mv -f "$d/prometheus.yml.new" "$d/prometheus.yml"
    local port; port=$(freeport); echo "$port" >"$d/port"
    start_daemon prometheus prometheus --config.file="$d/prometheus.yml" --storage.tsdb.path="$d/data" \
      --storage.tsdb.retention.time=1d --web.listen-address="127.0.0.1:$port"
    wait_for_daemon prometheus 60 "Prometheus /-/ready" prometheus_ready
  fi
  set_env 80-prometheus \
    "PROMETHEUS_URL=http://127.0.0.1:$(cat "$d/port")" \
    "PROMETHEUS_TARGETS=$d/targets" \
    "PROMETHEUS_BRIDGE_TOKEN=$(cat "$d/bridge-token")"
}
