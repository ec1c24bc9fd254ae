#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for user postgres without a password (tests only).
set -euo pipefail
if pg_isready -q -h 127.0.0.1 -p 5432; then exit 0; fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba=/etc/postgresql/$version/main/pg_hba.conf
if ! grep -q "civicseal-tests" "$hba"; then
  # A fresh Debian cluster asks for passwords on TCP; the test databases are throw-away, so trust loopback.
  sed -i '1i host all postgres 127.0.0.1/32 trust # civicseal-tests' "$hba"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
exit 1
