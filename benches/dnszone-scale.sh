#!/usr/bin/env bash
# DnsZones at scale on a testbed of its own; prints wall times, the ratio against direct PowerDNS
# calls (target: at most 1.5 at 1,000 zones x 10 records), the operator's peak RSS and writes per
# idle resync (target: 0).
#   benches/dnszone-scale.sh                 # 1000 zones x 10 records
#   ZONES=100 RECORDS=5 benches/dnszone-scale.sh
#   RESYNC=60 benches/dnszone-scale.sh       # the operator's resyncInterval in seconds (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="$PWD/target/testbed-bench" TESTBED_ENV="$PWD/target/testbed-bench/env"
tests/testbed/install-deps
trap 'tests/testbed/down' EXIT
tests/testbed/up
cargo bench -p mpanel-operator --bench dnszone_scale
