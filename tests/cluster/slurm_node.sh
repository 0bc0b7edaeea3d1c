#!/usr/bin/env bash
# A throwaway single-node SLURM (Debian's slurm-wlm 22.05) on a machine without systemd, for make
# test-cluster: installs the packages if missing, then starts munged, MariaDB and slurmdbd (accounting, which
# submitit's job watcher reads through sacct), slurmctld and slurmd by hand, with a minimal slurm.conf for this
# one node. Needs root. `slurm_node.sh start` (idempotent) or `slurm_node.sh stop` (ends the daemons it started,
# by the process ids it recorded).
set -euo pipefail
RUN=/run/arraybench-slurm
mkdir -p "$RUN"

started() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

stop() {
    for daemon in slurmd slurmctld slurmdbd mariadb munged; do
        if started "$daemon"; then kill "$(cat "$RUN/$daemon.pid")" && echo "stopped $daemon"; fi
        rm -f "$RUN/$daemon.pid"
    done
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq "$((seconds * 2))"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "slurm_node.sh: $what did not come up within ${seconds} s" >&2
    return 1
}

start() {
    if ! command -v slurmctld >/dev/null || ! command -v slurmdbd >/dev/null || ! command -v mariadbd >/dev/null \
        || ! command -v munged >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm slurmdbd munge mariadb-server >/dev/null
    fi
    local host cpus memory
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024))

    # munge: one key shared by every daemon and client of the cluster (here, one machine).
    mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
    if ! started munged; then
        runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
        wait_for munged 10 test -s /run/munge/munged.pid
        cp /run/munge/munged.pid "$RUN/munged.pid"
    fi
    wait_for munge 10 sh -c 'munge -n | unmunge'

    # MariaDB holds slurmdbd's accounting tables.
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    if ! started mariadb; then
        [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
        mariadbd --user=mysql --skip-networking=0 --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
            >"$RUN/mariadb.log" 2>&1 &
        echo $! >"$RUN/mariadb.pid"
        wait_for MariaDB 30 mariadb -e 'select 1'
    fi
    mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
        CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'arraybench';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    cat >/etc/slurm/slurmdbd.conf <<CONF
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageUser=slurm
StoragePass=arraybench
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
CONF
    chmod 0600 /etc/slurm/slurmdbd.conf
    cat >/etc/slurm/slurm.conf <<CONF
# One node that is also the controller; every daemon as root; no cgroups (no systemd here).
ClusterName=arraybench
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
    if ! started slurmdbd; then
        slurmdbd
        wait_for slurmdbd 30 sacctmgr -n list cluster
    fi
    sacctmgr -i -n list cluster | grep -q arraybench || sacctmgr -i add cluster arraybench >/dev/null
    if ! started slurmctld; then
        slurmctld
        wait_for slurmctld 30 scontrol ping
    fi
    if ! started slurmd; then
        slurmd
    fi
    wait_for "node $host" 60 sh -c "sinfo -h -N -o %t | grep -Eq '^(idle|mix|alloc)'"
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    echo "SLURM up: node $host, $cpus CPUs, partition debug, accounting through slurmdbd"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
