#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the store's tests: a temporary folder, a non-root user, a
# free loopback port, trust authentication on loopback only, and TLS with a throwaway CA.
#   eval "$(scripts/postgres-for-tests.sh start)"   prints the exports (CANDOR_TEST_POSTGRES,
#                                                   CANDOR_TEST_POSTGRES_CA, CANDOR_PG_DIR)
#   scripts/postgres-for-tests.sh stop DIR          stops the cluster and removes its folder
# Installs Debian's postgresql where no server is on the machine.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
if [ "${1:-}" = start ] && ! command -v openssl >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
case "${1:-}" in
start)
  # PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user where we are root.
  as=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    as=(runuser -u postgres --)
  fi
  dir=$(mktemp -d /tmp/candor-pg.XXXXXX)
  chmod 755 "$dir"
  [ "${#as[@]}" -gt 0 ] && chown postgres "$dir"
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "${as[@]}" "$bin/initdb" -D "$dir/data" -U candor --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # TLS with a throwaway CA, so that the tests can connect with and without it: the server
  # certificate names 127.0.0.1 and localhost.
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=candor-test-ca \
      -keyout ca.key -out ca.crt >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' > server.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt >/dev/null 2>&1
    chmod 600 server.key
    chmod 644 ca.crt
    [ "${#as[@]}" -gt 0 ] && chown postgres server.key server.crt
    true
  ) || { echo "cannot make the test cluster's certificates (openssl)" >&2; exit 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c fsync=off -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "export CANDOR_TEST_POSTGRES=postgres://candor@127.0.0.1:$port/postgres"
  echo "export CANDOR_TEST_POSTGRES_CA=$dir/ca.crt"
  echo "export CANDOR_PG_DIR=$dir"
  ;;
stop)
  dir=${2:?the cluster folder that start printed}
  as=()
  [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
  "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start | stop DIR" >&2
  exit 2
  ;;
esac
