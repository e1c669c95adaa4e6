#!/usr/bin/env bash
# The billing bridge's webhook intake (events/s, 90 % of them redeliveries, deduplicated), how fast a
# burst of paid orders becomes Subscriptions, and payment-to-Subscription latency (p50/p99) while the
# burst runs; BENCH_REPLICAS bridges on one ledger, on a testbed of its own; prints a table.
#   benches/bridge-throughput.sh                       # 2 replicas, 1,000 orders x 10 deliveries, 1,000 paid one at a time
#   BENCH_ORDERS=200 BENCH_LATENCY_ORDERS=50 BENCH_REPLICAS=1 benches/bridge-throughput.sh
#   BENCH_CEILING_LANES=32 benches/bridge-throughput.sh     # the apiserver ceiling with 32 applies at a time
set -euo pipefail
cd "$(dirname "$0")/.."
export TESTBED_DIR="$PWD/target/testbed-bench" TESTBED_ENV="$PWD/target/testbed-bench/env"
tests/testbed/install-deps
trap 'tests/testbed/down' EXIT
tests/testbed/up
# --workspace, not -p mpanel-billing-bridge: dependencies get the workspace's features, as in every
# other build, so they are compiled once for all
cargo bench --workspace --bench bridge_throughput
