#!/usr/bin/env bash
# The HTTP gateway's OpenAPI description (docs/openapi.json, which the node builds in and serves
# at /idn/v1/openapi.json) passes a standard validator: @apidevtools/swagger-parser, pinned in
# interop/ (interop/validate_openapi.mjs). Exits 77 (skipped) when node or
# interop/node_modules is missing (run scripts/setup).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
if ! command -v node >/dev/null 2>&1 ||
  [ ! -d "$here/interop/node_modules/@apidevtools/swagger-parser" ]; then
  echo "openapi_test: skipped: node or interop/node_modules missing (run scripts/setup)"
  exit 77
fi
cd "$here/interop"
node validate_openapi.mjs "$here/docs/openapi.json"
