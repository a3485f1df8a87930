#!/bin/sh
# Creates the namespace and the bridge's custom search attributes (idempotent).
set -eu
NS="${TEMPORAL_NAMESPACE:-default}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  echo "waiting for Temporal"; sleep 2
done
temporal operator namespace describe -n "$NS" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$NS" --retention 720h --address "$TEMPORAL_ADDRESS"
for sa in OrgId OpenCXSessionId CreatioCaseId; do
  temporal operator search-attribute create --namespace "$NS" --name "$sa" --type Keyword \
    --address "$TEMPORAL_ADDRESS" --yes 2>/dev/null || echo "search attribute $sa exists"
done
echo "namespace $NS ready"
