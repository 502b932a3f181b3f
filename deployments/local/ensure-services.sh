#!/usr/bin/env bash
# Start PostgreSQL, Redis and MariaDB when they are down (the commands this machine kind documents), then
# wait until they answer. Fails loudly when a service cannot be brought up.
set -euo pipefail

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
maria_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root --connect-timeout=2 ping >/dev/null 2>&1; }

if ! pg_up; then
  echo "PostgreSQL is down; starting it"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! redis_up; then
  echo "Redis is down; starting it"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! maria_up; then
  echo "MariaDB is down; starting it"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 60); do
  if pg_up && redis_up && maria_up; then echo "services: PostgreSQL, Redis and MariaDB are up"; exit 0; fi
  sleep 1
done
pg_up || echo "PostgreSQL on 127.0.0.1:5432 did not come up" >&2
redis_up || echo "Redis on 127.0.0.1:6379 did not come up" >&2
maria_up || echo "MariaDB on 127.0.0.1:3306 did not come up" >&2
exit 1
