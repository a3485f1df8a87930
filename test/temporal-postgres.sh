#!/usr/bin/env bash
# The conversation, fault and worker-process tests against a real Temporal server on PostgreSQL
# (npm run temporal:server), as in production. Stops the server it started.
set -uo pipefail
cd "$(dirname "$0")/.."
port="${TEMPORAL_SERVER_PORT:-7333}"
npm run --silent temporal:server -- --detach --for-tests || exit 1
TEMPORAL_ADDRESS="127.0.0.1:${port}" npx tsx test/run.ts \
  test/conversation.test.ts test/faults.test.ts test/topology.test.ts test/parked-and-late.test.ts
code=$?
npm run --silent temporal:server -- --stop
exit $code
