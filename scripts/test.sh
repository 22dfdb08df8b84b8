#!/usr/bin/env bash
# The project's single test command (see README.md):
#   1. installs the test requirements in a private virtualenv,
#   2. runs the static checks (ruff, manifest/XML/CSV/translation checks) and checks
#      docker-compose.yml with `docker-compose config` when docker-compose is installed,
#   3. runs the Odoo-free tests (tests/),
#   4. runs the addon's Odoo test suite when an Odoo 18 is available: ODOO_PYTHON (a python that
#      imports odoo) or an `odoo` command on PATH. It starts PostgreSQL if it can, installs the
#      addon in a fresh database, runs crm_whatsapp_bridge/tests and drops the database.
# It says which parts ran, and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${CWB_TEST_VENV:-$ROOT/.venv-test}
declare -a REPORT=()
STATUS=0

# Every step has a time bound, so that a hung step fails the run instead of hanging it.
INSTALL_TIMEOUT=${CWB_INSTALL_TIMEOUT:-900}
SUITE_TIMEOUT=${CWB_SUITE_TIMEOUT:-2400}
bounded() {
    local seconds=$1
    shift
    timeout --kill-after=30 "$seconds" "$@"
    local rc=$?
    [ $rc -eq 124 ] && echo "timed out after ${seconds}s: $*" >&2
    return $rc
}

note() { REPORT+=("$1"); }
fail() { STATUS=1; note "$1"; }

echo "== installing test requirements in $VENV"
if ! { [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"; } \
   || ! bounded "$INSTALL_TIMEOUT" "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r requirements-test.txt; then
    echo "could not install the test requirements" >&2
    exit 1
fi

echo "== static checks"
if "$VENV/bin/ruff" check . && "$VENV/bin/python" scripts/static_checks.py; then
    note "static checks: passed"
else
    fail "static checks: FAILED"
fi

echo "== docker compose file"
# docker-compose (Debian's package) or the docker compose plugin, when one is installed.
if command -v docker-compose >/dev/null; then
    COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
else
    COMPOSE=()
fi
if [ ${#COMPOSE[@]} -eq 0 ]; then
    note "docker-compose config: NOT RUN (neither docker-compose nor docker compose is installed)"
elif "${COMPOSE[@]}" --env-file .env.example -f docker-compose.yml config -q; then
    note "docker-compose config: passed (${COMPOSE[*]})"
else
    fail "docker-compose config: FAILED"
fi

echo "== Odoo-free tests"
bounded "$SUITE_TIMEOUT" "$VENV/bin/python" -m pytest -p no:odoo -p no:cacheprovider -q tests
rc=$?
if [ $rc -eq 0 ]; then note "Odoo-free tests: passed"; else fail "Odoo-free tests: FAILED (pytest exit $rc)"; fi

find_odoo_python() {
    if [ -n "${ODOO_PYTHON:-}" ]; then echo "$ODOO_PYTHON"; return; fi
    if python3 -c "import odoo" 2>/dev/null; then command -v python3; return; fi
    local odoo_cmd
    odoo_cmd=$(command -v odoo || command -v odoo-bin || true)
    if [ -n "$odoo_cmd" ]; then
        # The interpreter of the `odoo` launcher is the one that can import odoo.
        head -n1 "$odoo_cmd" | sed -n 's/^#!\s*//p' | awk '{print $1}'
    fi
}

ensure_postgres() {
    if pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; then return 0; fi
    if command -v pg_lsclusters >/dev/null; then
        local version cluster
        read -r version cluster _ < <(pg_lsclusters --no-header | head -n1)
        [ -n "${version:-}" ] && pg_ctlcluster "$version" "$cluster" start
    fi
    for _ in $(seq 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && return 0; sleep 1; done
    return 1
}

ensure_db_role() {
    # On a fresh machine the role Odoo connects with may not exist yet; create it when we can.
    if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
        local as_postgres="env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD psql -d postgres -qtA"
        su postgres -c "$as_postgres -c \"SELECT 1 FROM pg_roles WHERE rolname = '$PGUSER'\"" | grep -q 1 \
            || su postgres -c "$as_postgres -c \"CREATE ROLE \\\"$PGUSER\\\" LOGIN CREATEDB PASSWORD '$PGPASSWORD'\""
    fi
}

drop_database() {
    bounded 300 "$1" -c "
import sys, odoo
from odoo.tools import config
config.parse_config(['-c', sys.argv[1]])
odoo.service.db.exp_drop(sys.argv[2])" "$2" "$3" >/dev/null 2>&1 || true
}

run_odoo_suite() {
    local odoo_python=$1 odoo_root addons_path work db cfg rc
    odoo_root=$("$odoo_python" -c "import os, odoo; print(os.path.dirname(os.path.dirname(odoo.__file__)))")
    addons_path=${ODOO_ADDONS_PATH:-$odoo_root/addons}
    work=$(mktemp -d)
    db="cwb_test_$$"
    cfg="$work/odoo.cfg"
    cat > "$cfg" <<CFG
[options]
addons_path = $addons_path,$ROOT
db_host = $PGHOST
db_port = $PGPORT
db_user = $PGUSER
db_password = $PGPASSWORD
data_dir = $work/data
http_port = ${CWB_TEST_HTTP_PORT:-8169}
gevent_port = $(( ${CWB_TEST_HTTP_PORT:-8169} + 3 ))
log_level = warn
CFG
    if ! "$odoo_python" -c "import phonenumbers, requests, tenacity, google.auth, hypothesis, freezegun" \
            2>/dev/null; then
        echo "== installing the addon's Python requirements next to Odoo"
        bounded "$INSTALL_TIMEOUT" "$odoo_python" -m pip install -q --disable-pip-version-check \
            -r requirements.txt hypothesis freezegun || return 1
    fi
    echo "== installing crm_whatsapp_bridge in a fresh database $db"
    if ! bounded "$INSTALL_TIMEOUT" "$odoo_python" -m odoo -c "$cfg" -d "$db" -i crm_whatsapp_bridge \
            --without-demo=all --stop-after-init; then
        rm -rf "$work"
        return 1
    fi
    rc=0
    if "$odoo_python" -c "import pytest_odoo" 2>/dev/null; then
        echo "== Odoo test suite (crm_whatsapp_bridge/tests) with pytest-odoo"
        bounded "$SUITE_TIMEOUT" "$odoo_python" -m pytest -p no:cacheprovider -q --odoo-config="$cfg" \
            --odoo-database="$db" --odoo-http crm_whatsapp_bridge/tests || rc=1
    else
        note "Odoo test suite with pytest-odoo: NOT RUN (pytest_odoo not importable)"
    fi
    drop_database "$odoo_python" "$cfg" "$db"
    if [ "${CWB_ODOO_RUNNER:-1}" = 1 ]; then
        # Odoo's own runner installs the addon in a second fresh database and runs the same tests.
        echo "== Odoo test suite (crm_whatsapp_bridge/tests) with Odoo's runner"
        bounded "$SUITE_TIMEOUT" "$odoo_python" -m odoo -c "$cfg" -d "${db}_runner" -i crm_whatsapp_bridge \
            --without-demo=all --test-enable --test-tags /crm_whatsapp_bridge --stop-after-init \
            --log-level=test > "$work/test.log" 2>&1 || rc=1
        # Its summary lines ("N failed, N error(s) of N tests"); failing tests log "FAIL:" or "ERROR:
        # <test>", but the addon's own tests also provoke database errors on purpose.
        grep -E "odoo.tests.result|FAIL: |ERROR: (Test|test_)" "$work/test.log" | tail -n 20
        if ! grep -q "odoo.tests.result: 0 failed, 0 error(s)" "$work/test.log" \
                || grep -qE "odoo.tests.result: ([1-9][0-9]* failed|[0-9]+ failed, [1-9][0-9]* error)" \
                    "$work/test.log"; then
            rc=1
        fi
        drop_database "$odoo_python" "$cfg" "${db}_runner"
    fi
    rm -rf "$work"
    return $rc
}

export PGHOST=${PGHOST:-localhost} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-odoo} PGPASSWORD=${PGPASSWORD:-odoo}
ODOO_PY=$(find_odoo_python)
if [ -z "$ODOO_PY" ] || ! "$ODOO_PY" -c "import odoo.release as r, sys; sys.exit(r.version_info[0] != 18)" 2>/dev/null; then
    note "Odoo test suite: NOT RUN (no Odoo 18 found: set ODOO_PYTHON or put an 'odoo' command on PATH)"
elif ! ensure_postgres; then
    fail "Odoo test suite: NOT RUN, PostgreSQL unreachable at $PGHOST:$PGPORT"
else
    ensure_db_role
    if run_odoo_suite "$ODOO_PY"; then
        note "Odoo test suite: passed (Odoo 18 from $ODOO_PY)"
    else
        fail "Odoo test suite: FAILED"
    fi
fi

echo
echo "== summary"
printf '  %s\n' "${REPORT[@]}"
exit $STATUS
