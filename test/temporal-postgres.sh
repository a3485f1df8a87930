#!/usr/bin/env bash
# The conversation, fault, worker-process, worker-versioning, key-rotation and needs-attention tests
# against a real Temporal server on PostgreSQL (npm run temporal:server), as in production. Stops
# the server it started.
set -uo pipefail
cd "$(dirname "$0")/.."
port="${TEMPORAL_SERVER_PORT:-7333}"
npm run --silent temporal:server -- --detach --for-tests || exit 1
TEMPORAL_ADDRESS="127.0.0.1:${port}" npx tsx test/run.ts \
  test/e2e/conversation.test.ts test/e2e/faults.test.ts test/e2e/topology.test.ts test/e2e/parked-and-late.test.ts \
  test/e2e/worker-versioning.test.ts test/e2e/key-rotation.test.ts test/e2e/attention.test.ts
code=$?
npm run --silent temporal:server -- --stop
exit $code
