#!/usr/bin/env bash
# The billing bridge's webhook intake (events/s, 90 % of them redeliveries, deduplicated) and its
# payment-to-Subscription latency (p50/p99) on a testbed of its own; prints a table.
#   benches/bridge-throughput.sh                               # 200 orders x 10 deliveries, 50 paid one at a time
#   BENCH_ORDERS=1000 BENCH_LATENCY_ORDERS=100 benches/bridge-throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="$PWD/target/testbed-bench" TESTBED_ENV="$PWD/target/testbed-bench/env"
tests/testbed/install-deps
trap 'tests/testbed/down' EXIT
tests/testbed/up
# --workspace, not -p mpanel-billing-bridge: dependencies get the workspace's features, as in every
# other build, so they are compiled once for all
cargo bench --workspace --bench bridge_throughput
