#!/usr/bin/env bash
# Every kind at scale on a testbed of its own, one operator process with every controller: per
# kind the seconds from a cold start to all Ready, provider calls per object, and the API and
# provider writes and reads over one idle resync (target: 0 writes); then the operator's peak RSS
# (target: < 150 MiB), its CPU seconds and the Lease renewals it missed (target: none).
#   benches/scale.sh                             # 2,000 each of DnsZone, Mailbox, CloudPod, Domain; 50 Certificates
#   PER_KIND=50 CERTIFICATES=5 benches/scale.sh
#   RESYNC=60 PER_KIND=200 benches/scale.sh     # the operator's resyncInterval in seconds (default 300)
#   TESTBED_DIR=$PWD/target/testbed-mine benches/scale.sh   # a testbed of its own beside another bench's
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="${TESTBED_DIR:-$PWD/target/testbed-bench}"
export TESTBED_ENV="${TESTBED_ENV:-$TESTBED_DIR/env}"
# certificates that live 30 days: the testbed's 600 s ones would come due for renewal inside the
# idle resync and count as its writes (renewal is a change, not a resync)
export PEBBLE_CERT_VALIDITY="${PEBBLE_CERT_VALIDITY:-2592000}"
tests/testbed/install-deps
trap 'tests/testbed/down' EXIT
tests/testbed/up
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
started=$SECONDS
cargo bench -p mpanel-operator --bench scale
echo "wall time of the bench (build included): $((SECONDS - started)) s"
