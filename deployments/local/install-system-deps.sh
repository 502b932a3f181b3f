#!/usr/bin/env bash
# Debian packages OpenFuse's Python dependencies build against (mysqlclient needs the MariaDB/MySQL
# client headers), kcat, the outside Kafka client the CDC tests read topics with
# (tests/cdc/test_cdc_kcat.py). With --web also chromium, the browser the dashboard's end-to-end
# test drives through playwright-core (tests/web/test_dashboard.py). With --bench also the benchmarks' load
# generator (wrk, for bench/api_load.py and bench/api_enforcement.py). Idempotent: installs only what is missing;
# needs root (or sudo) when it does.
set -euo pipefail

need=()
if [ "${1:-}" = "--bench" ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
fi
pkg-config --exists mysqlclient 2>/dev/null || pkg-config --exists libmariadb 2>/dev/null || need+=(default-libmysqlclient-dev)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
if [ "${1:-}" = "--web" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "run as root, or: apt-get install ${need[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
