#!/usr/bin/env bash
# Certificate apply-to-Ready time (target: under 10 s for one; 100 applied at once all Ready within
# 20 s) on a testbed of its own, with pebble validating DNS-01 against PowerDNS.
#   benches/certificate-issue.sh                       # 20 one at a time, then 20 at once
#   SEQUENTIAL=5 CONCURRENT=50 benches/certificate-issue.sh
#   SEQUENTIAL=0 CONCURRENT=100 WAIT_SECONDS=60 benches/certificate-issue.sh
# TESTBED_DIR / TESTBED_ENV choose the testbed (default target/testbed-bench); it is brought down
# at the end unless KEEP_TESTBED=1 (for runs one after another). OPERATOR_LOG=<file> keeps the
# operator's log (RUST_LOG, default warn).
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="${TESTBED_DIR:-$PWD/target/testbed-bench}"
export TESTBED_ENV="${TESTBED_ENV:-$TESTBED_DIR/env}"
tests/testbed/install-deps
if [ "${KEEP_TESTBED:-0}" != 1 ]; then
  trap 'tests/testbed/down' EXIT
fi
tests/testbed/up
cargo bench -p mpanel-operator --bench certificate_issue
