#!/usr/bin/env bash
# Make sure the real services the suite talks to are installed, running and
# prepared: PostgreSQL (database synnefo_test) and RabbitMQ (vhost
# synnefo-test), plus Debian's AMQP spec files. Idempotent; installs with
# apt-get on a Debian machine where something is missing.
set -euo pipefail
log() { echo "[services] $*" >&2; }

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v rabbitmqctl >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
[ -f /usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml ] || need_apt+=(amqp-specs)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d may forbid starting services from the package scripts; we start them below.
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# --- PostgreSQL -----------------------------------------------------------
pg_ver=$(ls /etc/postgresql | sort -V | tail -1)
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL $pg_ver"
  pg_ctlcluster --skip-systemctl-redirect "$pg_ver" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432 >/dev/null || { log "PostgreSQL does not answer on 127.0.0.1:5432"; exit 1; }
# trust on loopback for the test role (a fresh Debian install uses scram)
hba=/etc/postgresql/$pg_ver/main/pg_hba.conf
if ! grep -q '^host all synnefo_test 127.0.0.1/32 trust' "$hba"; then
  sed -i '1i host all synnefo_test 127.0.0.1/32 trust' "$hba"
  runuser -u postgres -- psql -qAtc 'select pg_reload_conf()' >/dev/null
fi
psql_su() { runuser -u postgres -- psql -v ON_ERROR_STOP=1 -qAt "$@"; }
[ "$(psql_su -c "select 1 from pg_roles where rolname='synnefo_test'")" = 1 ] || psql_su -c "create role synnefo_test login createdb"
for db in synnefo_test synnefo_bench synnefo_node; do
  [ "$(psql_su -c "select 1 from pg_database where datname='$db'")" = 1 ] || psql_su -c "create database $db owner synnefo_test"
done

# --- RabbitMQ -------------------------------------------------------------
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do rabbitmqctl -q status >/dev/null 2>&1 && break; sleep 0.5; done
fi
rabbitmqctl -q await_startup >/dev/null 2>&1 || { log "RabbitMQ does not answer"; exit 1; }
# the app may be stopped (stop_app) while the node runs
rabbitmqctl -q start_app >/dev/null 2>&1 || true
rabbitmqctl -q list_users 2>/dev/null | grep -q '^guest' || { rabbitmqctl -q add_user guest guest; rabbitmqctl -q set_user_tags guest administrator; }
rabbitmqctl -q list_vhosts 2>/dev/null | grep -qx 'synnefo-test' || rabbitmqctl -q add_vhost synnefo-test
rabbitmqctl -q set_permissions -p synnefo-test guest '.*' '.*' '.*' >/dev/null
for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.5; done
log "PostgreSQL and RabbitMQ ready"
