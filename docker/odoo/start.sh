#!/bin/bash
# Entry point of the Odoo service.
#   (no argument)  first start: create the database named ODOO_DB and install crm_whatsapp_bridge;
#                  every start: run Odoo on that database only, database manager off.
#   test           run the addon's Odoo test suite in a throwaway database, then drop it
#                  (docker compose run --rm odoo test); the exit code says whether it passed.
# Odoo options given after "--" (or any argument starting with "-") are passed to odoo.
set -euo pipefail
: "${ODOO_DB:?set ODOO_DB in .env}" "${ODOO_MASTER_PASSWORD:?set ODOO_MASTER_PASSWORD in .env}"
: "${ODOO_ADMIN_PASSWORD:?set ODOO_ADMIN_PASSWORD in .env}"
: "${HOST:=db}" "${USER:=odoo}" "${PASSWORD:?}"
export PGHOST=$HOST PGUSER=$USER PGPASSWORD=$PASSWORD

# The configuration holds the passwords: written at each start, readable by the odoo user only.
CONF=/tmp/odoo.conf
install -m 600 /dev/null "$CONF"
cat > "$CONF" <<CONF
[options]
addons_path = /mnt/extra-addons,/usr/lib/python3/dist-packages/odoo/addons
data_dir = /var/lib/odoo
db_host = $HOST
db_port = 5432
db_user = $USER
db_password = $PASSWORD
db_name = $ODOO_DB
dbfilter = ^$ODOO_DB\$
list_db = False
admin_passwd = $ODOO_MASTER_PASSWORD
proxy_mode = True
without_demo = all
CONF

python3 /usr/local/bin/wait-for-psql.py --db_host "$HOST" --db_port 5432 --db_user "$USER" \
    --db_password "$PASSWORD" --timeout 60

installed() {  # is crm_whatsapp_bridge installed in database $1?
    [ "$(psql -d "$1" -tAc "SELECT state FROM ir_module_module WHERE name = 'crm_whatsapp_bridge'" \
          2>/dev/null)" = installed ]
}

if [ "${1:-}" = test ]; then
    shift
    db="${ODOO_DB}_test"
    psql -d postgres -qc "DROP DATABASE IF EXISTS \"$db\""
    status=0
    odoo -c "$CONF" -d "$db" --db-filter "^$db\$" -i crm_whatsapp_bridge --test-enable \
        --test-tags /crm_whatsapp_bridge --stop-after-init --log-level=test "$@" 2>&1 | tee /tmp/test.log \
        || status=$?
    grep -qE "(ERROR|FAIL):" /tmp/test.log && status=1
    psql -d postgres -qc "DROP DATABASE IF EXISTS \"$db\""
    exit $status
fi

if ! installed "$ODOO_DB"; then
    echo "First start: creating database $ODOO_DB with crm_whatsapp_bridge installed"
    odoo -c "$CONF" -d "$ODOO_DB" -i crm_whatsapp_bridge --stop-after-init --no-http
fi
# The administrator's password is "admin" in a new database: replace it once, before Odoo
# listens (the mark in the data volume keeps a password changed later in Odoo).
ADMIN_SET="/var/lib/odoo/.admin-password-set-$ODOO_DB"
if [ ! -e "$ADMIN_SET" ]; then
    echo 'import os; env.ref("base.user_admin").password = os.environ["ODOO_ADMIN_PASSWORD"]; env.cr.commit()' \
        | odoo shell -c "$CONF" -d "$ODOO_DB" --no-http --log-level=warn
    touch "$ADMIN_SET"
fi
[ "${1:-}" = -- ] && shift
exec odoo -c "$CONF" "$@"
