# fakepve, the testbed's Proxmox VE (sourced by up): a schema-checked fake of the PVE API from PyPI,
# started by tests/testbed/fakepve-launch.py (nodes pve1 and pve2, the templates CT 100 tmpl-debian and
# VM 9000 tmpl-qemu, tasks that finish at once, the /_ctl routes for tests). It serves HTTPS with a
# self-signed certificate made at each start (PROXMOX_CA) and takes the API token root@pam!operator.
# Its state lives in memory only: a restart forgets every guest made since, and starts again from
# the seed.
# shellcheck shell=bash

fakepve_ready() {
  [ -f "$TESTBED_DIR/fakepve/env" ] || return 1
  # shellcheck disable=SC1091
  (source "$TESTBED_DIR/fakepve/env" && curl -fs -o /dev/null --cacert "$PROXMOX_CA" \
    -H "Authorization: PVEAPIToken=$PROXMOX_TOKEN" "$PROXMOX_URL/api2/json/version")
}

up_fakepve() {
  [ -x "$FAKEPVE_VENV/bin/python" ] || { log "fakepve is not installed; run tests/testbed/install-deps"; exit 1; }
  local d=$TESTBED_DIR/fakepve
  if is_running fakepve && fakepve_ready; then
    log "fakepve already running; reusing it"
  else
    stop_daemon fakepve
    local port secret
    rm -rf "$d"; mkdir -p "$d"
    port=$(freeport); secret=$(openssl rand -hex 16)
    # the env file holds the token's secret: readable by its owner only
    (
      umask 077
      printf '%s\n' "PROXMOX_URL=https://127.0.0.1:$port" "PROXMOX_TOKEN=root@pam!operator=$secret" \
        "PROXMOX_CA=$d/fakepve.crt" "PROXMOX_CTL_URL=https://127.0.0.1:$port" >"$d/env"
    )
    # the secret goes in the environment, not on the command line where ps shows it
    start_daemon fakepve env FAKEPVE_TOKEN_SECRET="$secret" \
      "$FAKEPVE_VENV/bin/python" "$ROOT/tests/testbed/fakepve-launch.py" "$port" "$d"
    wait_for_daemon fakepve 30 "fakepve's /api2/json/version" fakepve_ready
  fi
  mapfile -t keys <"$d/env"
  set_env 45-fakepve "${keys[@]}"
}
