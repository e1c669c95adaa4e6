#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kubectl (k8s.io/kubernetes) and etcd from the Go
# module proxy into OUT. Idempotent: a complete OUT is left alone.
#   build-k8s.sh K8S_VERSION ETCD_VERSION OUT
set -euo pipefail
KV=${1#v}; EV=${2#v}; OUT=${3:?usage: build-k8s.sh K8S_VERSION ETCD_VERSION OUT}
MINOR=$(cut -d. -f2 <<<"$KV"); PATCH=$(cut -d. -f3 <<<"$KV")
export GOTOOLCHAIN=${GOTOOLCHAIN:-local} GOFLAGS=-mod=mod CGO_ENABLED=0
mkdir -p "$OUT"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

if [ ! -x "$OUT/kube-apiserver" ] || [ ! -x "$OUT/kube-controller-manager" ] || [ ! -x "$OUT/kubectl" ]; then
  mkdir "$work/k8s"; cd "$work/k8s"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths; a scratch module pins each
  # of them to the published v0.MINOR.PATCH instead.
  kmod=$(go mod download -json "k8s.io/kubernetes@v$KV" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  go mod init kbuild >/dev/null 2>&1
  go mod edit -go="$(awk '$1=="go"{print $2; exit}' "$kmod")"
  grep -E '^godebug ' "$kmod" >> go.mod || true
  for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/.*#\1#p' "$kmod"); do
    go mod edit -replace="$m=$m@v0.$MINOR.$PATCH"
  done
  pkgs="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl"
  # no `go mod tidy`: the scratch module has no .go files and tidy would drop every requirement
  go get $(for p in $pkgs; do echo "$p@v$KV"; done)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$KV -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean"
  done
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "$ld" -o "$work/bin/" $pkgs
  mv "$work/bin/"* "$OUT/"
fi

if [ ! -x "$OUT/etcd" ]; then
  mkdir "$work/etcd"; cd "$work/etcd"
  go mod init ebuild >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@v$EV"
  go build -trimpath -ldflags "-s -w" -o "$work/etcd-bin" go.etcd.io/etcd/server/v3
  mv "$work/etcd-bin" "$OUT/etcd"
fi
"$OUT/kube-apiserver" --version
"$OUT/etcd" --version | head -1
