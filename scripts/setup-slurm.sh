#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the queue tests (haruspex_plugin/tests/test_slurm_queue.py):
#
#   scripts/setup-slurm.sh start DIR   install Debian's SLURM and munge packages when missing (root + apt-get),
#                                      write slurm.conf and gres.conf under DIR, start munged, slurmctld and slurmd
#                                      (everything under DIR: sockets, state, spool, logs, pid files; loopback only)
#                                      and wait until the node accepts jobs. Point the SLURM commands at it with
#                                      SLURM_CONF=DIR/slurm.conf.
#   scripts/setup-slurm.sh stop DIR    cancel the cluster's jobs and stop its three daemons (by their pid files)
#
# Both are idempotent: a second start while the daemons run only checks the node; stop on a stopped cluster does
# nothing. Exit status 3 (with the reason on stderr) means SLURM cannot run here: not root, or the packages are
# missing and apt-get is not available. Any other failure is an error.
#
# The node (`hostname -s`, at 127.0.0.1): this machine's CPUs and 80 % of its memory, partitions "gpu" (the default)
# and "cpu" (the queues of the hosts.conf in docs/cluster.md), and two *fake* GPUs: gres gpu on DIR/fake-gpu/nvidia0
# and nvidia1, links to /dev/null, so that requests such as --gres=gpu:1 are scheduled and SLURM sets
# CUDA_VISIBLE_DEVICES in the job as on a GPU node (the programs in the job still find no GPU). Ports: the first free
# ones from 16817. No cgroups (proctrack/linuxproc, task/none: containers without systemd have none) and no
# accounting database: finished jobs are recorded by jobcomp/filetxt in DIR/jobcomp.txt, which `sacct --completion`
# lists (SLURM 22.05 has no file-based accounting storage).
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge)
PARTITIONS=(gpu cpu)  # both on the one node; the first is the default
FAKE_GPUS=2

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
cannot() { echo "setup-slurm: SLURM cannot run here: $*" >&2; exit 3; }
log() { echo "setup-slurm: $*" >&2; }

[ $# -eq 2 ] || usage
action=$1
if [ "$action" = stop ] && [ ! -d "$2" ]; then exit 0; fi  # nothing was started there
mkdir -p "$2"
dir=$(cd "$2" && pwd)
conf=$dir/slurm.conf
export SLURM_CONF=$conf

alive() {  # alive PIDFILE: the process the pid file names is running
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  local missing=()
  for program in munged slurmctld slurmd sbatch squeue scancel sacct sinfo; do
    command -v "$program" >/dev/null 2>&1 || missing+=("$program")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || cannot "${missing[*]} not installed and no apt-get"
  log "installing ${PACKAGES[*]}"
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the packages from starting system-wide daemons of their own
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}")
  if ! "${apt[@]}" >"$dir/apt.log" 2>&1; then  # stale or missing package lists: update them once
    if ! { apt-get update -q && "${apt[@]}"; } >>"$dir/apt.log" 2>&1; then
      tail -20 "$dir/apt.log" >&2
      echo "setup-slurm: apt-get install failed (log: $dir/apt.log)" >&2
      exit 1
    fi
  fi
}

free_port() {  # free_port FIRST: the first port from FIRST on that nothing on 127.0.0.1 listens to
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}

write_config() {
  local host cpus memory ctld_port slurmd_port
  host=$(hostname -s)
  cpus=$(nproc)
  memory=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  ctld_port=$(free_port 16817)
  slurmd_port=$(free_port $((ctld_port + 1)))
  mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/log" "$dir/fake-gpu"
  for ((gpu = 0; gpu < FAKE_GPUS; gpu++)); do ln -sfn /dev/null "$dir/fake-gpu/nvidia$gpu"; done
  cat >"$conf" <<EOF
# One-node test cluster written by scripts/setup-slurm.sh; everything under $dir.
ClusterName=haruspex-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
GresTypes=gpu
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:$FAKE_GPUS State=UNKNOWN
EOF
  local default=YES partition
  for partition in "${PARTITIONS[@]}"; do
    echo "PartitionName=$partition Nodes=$host Default=$default MaxTime=INFINITE State=UP" >>"$conf"
    default=NO
  done
  cat >"$dir/gres.conf" <<EOF
# Fake GPUs (links to /dev/null: SLURM wants character devices): SLURM schedules them and sets
# CUDA_VISIBLE_DEVICES in the jobs that get them; there is no GPU behind them.
NodeName=$host Name=gpu File=$dir/fake-gpu/nvidia[0-$((FAKE_GPUS - 1))]
EOF
  # slurmd reads cgroup.conf beside slurm.conf; no plugin here uses cgroups (none in containers without systemd).
  echo "# no cgroup plugin in use: proctrack/linuxproc, task/none, jobacct_gather/none" >"$dir/cgroup.conf"
}

start_daemons() {
  if ! alive "$dir/munged.pid"; then
    [ -s "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none;
                                      chmod 400 "$dir/munge/munge.key"; }
    munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
      --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  fi
  alive "$dir/slurmctld.pid" || slurmctld -i
  alive "$dir/slurmd.pid" || slurmd
}

wait_for_node() {  # the node is idle or allocated (accepts jobs); up to 60 s
  local state=""
  for _ in $(seq 120); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
    case $state in idle|mix|alloc) return 0 ;; esac
    sleep 0.5
  done
  echo "setup-slurm: the node did not come up (state '${state}'); logs in $dir/log" >&2
  tail -5 "$dir"/log/*.log >&2 || true
  exit 1
}

stop_daemons() {
  if alive "$dir/slurmctld.pid"; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel --full 2>/dev/null || true
    for _ in $(seq 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  terminate "$dir/slurmd.pid" "$dir/slurmctld.pid"
  terminate "$dir/munged.pid"  # last: the SLURM daemons authenticate through it until they are gone
}

terminate() {  # terminate PIDFILE...: SIGTERM to each running daemon, SIGKILL to any still there after 10 s
  local pidfile pids=()
  for pidfile in "$@"; do alive "$pidfile" && pids+=("$(cat "$pidfile")"); done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 40); do kill -0 "${pids[@]}" 2>/dev/null || return 0; sleep 0.25; done
  log "daemons ${pids[*]} ignored SIGTERM; killing them"
  kill -9 "${pids[@]}" 2>/dev/null || true
}

case $action in
  start)
    [ "$(id -u)" -eq 0 ] || cannot "it needs root (apt-get, and slurmd runs the jobs as root); running as $(id -un)"
    install_packages
    if ! alive "$dir/slurmctld.pid"; then write_config; fi
    start_daemons
    wait_for_node
    log "cluster up: SLURM_CONF=$conf"
    ;;
  stop) stop_daemons ;;
  *) usage ;;
esac
