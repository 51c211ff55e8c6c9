#!/bin/sh
# start-sentinel.sh PORT PRIMARY_PORT: a sentinel of the lab's group on 127.0.0.1:PORT that
# watches the primary "acdkit" at 127.0.0.1:PRIMARY_PORT with a quorum of 2. A sentinel
# rewrites its configuration file as the group changes, so it runs from a copy, made on the
# container's first start only: a restarted sentinel keeps what it learnt (the primary after
# a failover), instead of watching PRIMARY_PORT again.
set -eu
conf=/var/lib/redis/sentinel-$1.conf
if [ ! -f "$conf" ]; then
  echo "sentinel monitor acdkit 127.0.0.1 $2 2" > "$conf.new"
  cat /etc/acdkit-ha/sentinel.conf >> "$conf.new"
  mv "$conf.new" "$conf"
fi
exec redis-server "$conf" --sentinel --port "$1"
