#!/bin/sh
# First start: an empty data directory; then the database and user from the environment, idempotently.
set -eu
data=/var/lib/mysql
: "${MARIADB_PASSWORD:?set MARIADB_PASSWORD}"
db=${MARIADB_DATABASE:-provisiond}
user=${MARIADB_USER:-provisiond}
if [ ! -d "$data/mysql" ]; then
  mariadb-install-db --no-defaults --user=mysql --datadir="$data" --auth-root-authentication-method=normal \
    --skip-test-db >/dev/null
fi
umask 077
cat >/run/mysqld/init.sql <<SQL
CREATE DATABASE IF NOT EXISTS \`$db\`;
CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL ON \`$db\`.* TO '$user'@'%';
SQL
chown mysql:mysql /run/mysqld/init.sql
exec mariadbd --no-defaults --user=mysql --datadir="$data" --port=3306 --bind-address=0.0.0.0 \
  --socket=/run/mysqld/mysqld.sock --init-file=/run/mysqld/init.sql "$@"
