#!/usr/bin/env bash
# Debian's Slurm + MariaDB for tests/test_slurm.py's one-node cluster on 127.0.0.1 (`make test` runs this).
# Needs root and apt; where that is impossible it says so loudly and the Slurm tests skip.
set -u
need="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
if command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ]; then
  if [ -x /usr/sbin/slurmdbd ] && [ -x /usr/sbin/mariadbd ] && [ -x /usr/sbin/munged ]; then exit 0; fi
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "!!! WARNING: cannot install Slurm here (needs root and apt-get): the real-Slurm tests will SKIP !!!" >&2
  exit 0
fi
echo "installing Debian's Slurm for the cluster tests: $need"
log=$(mktemp -t kollm-install-slurm.XXXXXX.log)
if ! (DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) > "$log" 2>&1; then
  echo "!!! WARNING: installing Slurm failed (see $log): the real-Slurm tests will SKIP !!!" >&2
fi
exit 0
