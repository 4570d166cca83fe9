#!/usr/bin/env bash
# azure.sh [--json]: size the link and the request bill before buying anything. With AZURE_STORAGE_CONNECTION_STRING
# set to a storage account (Azure, or Azurite), backs up and restores SIZE_MIB (default 1024) of incompressible data
# through Coffer's engine into a new container `coffer-bench-XXXXXXXX` (deleted afterwards unless KEEP=1; CONTAINER=
# names another) and prints MB/s, requests per GiB and the estimated request cost per TiB at list prices (the prices
# and their date are stated in the output: assumptions, override with PRICE_WRITE_10K / PRICE_READ_10K).
# Needs `npm run build` first. Storage (GB-month) and egress costs are not included.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${AZURE_STORAGE_CONNECTION_STRING:-}" ]; then
  echo "azure.sh: set AZURE_STORAGE_CONNECTION_STRING to the storage account to measure" >&2
  exit 2
fi
[ -f "$HERE/../dist/engine/index.js" ] || { echo "azure.sh: run npm run build first" >&2; exit 2; }
exec node "$HERE/azure.mjs" "$@"
