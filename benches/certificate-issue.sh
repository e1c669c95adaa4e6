#!/usr/bin/env bash
# Certificate apply-to-Ready time (target: under 10 s for one; 100 applied at once all Ready within
# 20 s) on a testbed of its own, with pebble validating DNS-01 against PowerDNS.
#   benches/certificate-issue.sh                       # 20 one at a time, then 20 at once
#   SEQUENTIAL=5 CONCURRENT=50 benches/certificate-issue.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="$PWD/target/testbed-bench" TESTBED_ENV="$PWD/target/testbed-bench/env"
tests/testbed/install-deps
trap 'tests/testbed/down' EXIT
tests/testbed/up
cargo bench -p mpanel-operator --bench certificate_issue
