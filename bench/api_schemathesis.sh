#!/usr/bin/env bash
# Property-based run of the addon's OpenAPI document against a running Odoo (schemathesis).
#   bench/api_schemathesis.sh http://localhost:8069 <odoo api key> [extra schemathesis options]
# The key should belong to a Sales Manager, so every route is reachable. It fails on any
# 5xx, on a status or content type the document does not declare, and on a body that does
# not match its schema. Needs `pip install schemathesis` (4.x).
set -euo pipefail
base_url=${1:?base URL of the Odoo server}
api_key=${2:?an Odoo API key}
shift 2
exec schemathesis run "$base_url/crm/openapi.yaml" \
    --url "$base_url" \
    --header "Authorization: Bearer $api_key" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "${CWB_FUZZ_EXAMPLES:-100}" \
    --workers 2 \
    "$@"
