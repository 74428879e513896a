#!/usr/bin/env bash
# A check on a real Slurm (not run in CI): start a one-node cluster on this machine (munged, slurmctld,
# slurmd with a generated slurm.conf), run a 2-cell grid with --launcher slurm, and compare its
# leaderboard with the in-process loop's. Needs root (apt-get, the daemons). Stops the daemons it started.
#
#   bash benchmarks/slurm_check.sh [WORKDIR]     # default WORKDIR: .cache/slurm-check (git-ignored)
#
# WORKDIR must not be under /tmp: the launcher refuses node-local run folders for Slurm.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
WORK=$(mkdir -p "${1:-$REPO/.cache/slurm-check}" && cd "${1:-$REPO/.cache/slurm-check}" && pwd)
HOST=$(hostname -s)
export OMP_NUM_THREADS=1 COLUMNS=160 SLURM_CONF="$WORK/slurm.conf"
say() { printf '\n== %s\n' "$*"; }
STARTED=()
cleanup() { for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  say "installing slurm-wlm and munge"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge
fi
rm -rf "$WORK"/{spool,state,log,inproc,inproc-boards,slurm-runs,slurm-boards}
mkdir -p "$WORK"/{spool,state,log}

say "munge"
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
  || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
  runuser -u munge -- munged
  sleep 1
  STARTED+=("$(cat /run/munge/munged.pid)")
fi
munge -n | unmunge | grep STATUS

say "slurm.conf ($SLURM_CONF)"
cat > "$SLURM_CONF" <<EOF
ClusterName=wsolcheck
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$(nproc) State=UNKNOWN
PartitionName=check Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
cat "$SLURM_CONF"

say "slurmctld, slurmd"
slurmctld -D -f "$SLURM_CONF" >"$WORK/log/slurmctld.out" 2>&1 & STARTED+=("$!")
sleep 2
slurmd -D -f "$SLURM_CONF" >"$WORK/log/slurmd.out" 2>&1 & STARTED+=("$!")
for _ in $(seq 30); do sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)' && break; sleep 1; done
sinfo

say "the data: a 4-class synthetic set at 32 px"
"$PY" -c "from wsolbench.data.synthetic import generate; generate('$WORK/synth', classes=4, per_class=8, test_per_class=3, size=32)"
GRID=(-m cam -b test_resnet -d synthetic --data-root "$WORK/synth" --seeds 0 1 --epochs 1 --batch-size 8
      --lr 0.01 --input-size 32 --output-stride 8 --no-progress)

say "the grid in-process"
"$PY" -m wsolbench run "${GRID[@]}" --out "$WORK/inproc"
"$PY" -m wsolbench leaderboard --runs "$WORK/inproc" --out "$WORK/inproc-boards"

say "the grid with --launcher slurm"
t0=$(date +%s)
"$PY" -m wsolbench run "${GRID[@]}" --out "$WORK/slurm-runs" --launcher slurm --slurm partition=check,time=00:20:00,cpus=1
echo "slurm grid wall time: $(( $(date +%s) - t0 )) s"
grep -h "Starting with JobEnvironment" "$WORK"/slurm-runs/.grid/jobs/*/*_log.out | sed "s/^.*Starting/Starting/" || true
"$PY" -m wsolbench status "$WORK/slurm-runs"
"$PY" -m wsolbench leaderboard --runs "$WORK/slurm-runs" --out "$WORK/slurm-boards"

say "the same grid again: every cell complete, nothing submitted"
"$PY" -m wsolbench run "${GRID[@]}" --out "$WORK/slurm-runs" --launcher slurm --slurm partition=check,time=00:20:00,cpus=1 \
  | grep -E "skipped|submitted" || true

say "leaderboards: in-process vs slurm"
status=0
for f in "$WORK"/inproc-boards/*.csv; do
  if cmp -s "$f" "$WORK/slurm-boards/$(basename "$f")"; then echo "identical: $(basename "$f")"
  else echo "DIFFERENT: $(basename "$f")"; diff "$f" "$WORK/slurm-boards/$(basename "$f")" || true; status=1; fi
done
cat "$WORK/slurm-boards/synthetic-cub.md"
[ "$status" = 0 ] && echo "SLURM CHECK PASSED" || echo "SLURM CHECK FAILED"
exit "$status"
