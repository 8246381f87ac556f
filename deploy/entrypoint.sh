#!/bin/sh
# Container entrypoint: bring the database to the newest schema, then become
# `anon-plugin ARGS` (default: serve). exec, so anon-plugin is PID 1 and gets
# docker stop's SIGTERM itself: it stops taking jobs and drains those in hand.
#
#   docker run IMAGE                  -> db upgrade, then serve
#   docker run IMAGE watch            -> db upgrade, then watch (no panel)
#   docker run -i IMAGE users add NAME --password-stdin
#   docker run IMAGE db current       -> only that (no upgrade first)
#   docker run IMAGE worker --device cuda:0   -> only that (compose.scale.yaml)
set -eu

[ "$#" -gt 0 ] || set -- serve

case "$1" in
  # Help, version and the db commands themselves run as asked.
  -h|--help|-V|--version|db) ;;
  # A worker of the celery backend shares the daemon's database, perhaps from
  # another machine with another image: it never migrates it (N workers would
  # race to), it refuses one that is not at its version. The daemon upgrades.
  worker) ;;
  # Everything else needs the tables; upgrading an up-to-date database is a no-op.
  *) anon-plugin db upgrade ;;
esac

exec anon-plugin "$@"
