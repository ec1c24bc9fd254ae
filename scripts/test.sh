#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian machine, start PostgreSQL, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in age chromium fonts-noto-cjk fonts-ipaexfont-mincho fonts-ipaexfont-gothic fonts-ipamj-mincho libpango-1.0-0 \
  libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils postgresql; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

bash scripts/postgres.sh

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests bench
.venv/bin/lint-imports
.venv/bin/pytest -q "$@"
