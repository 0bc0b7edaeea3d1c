#!/bin/bash
# Each fault of docs/faults.md through the real command line (run as root: it mounts tmpfs and makes a memory cgroup).
# Scratch space under /tmp/m; the worker-fault sweep is split so that the MemoryError (n=10) does not skip the rest.
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD ARRAYBENCH_BACKENDS=tests.faulty_backend:FaultyBackend
P=${PYTHON:-/work/venv/bin/python}
T="--devices cpu --dtypes float64 --repeats 2 --budget 100 --fit-budget none --formulations tutorial --no-probe"
W=/tmp/m/w; rm -rf $W; mkdir -p $W
summ() { $P - "$1" <<'PY'
import sys, pandas as pd
d = pd.read_csv(sys.argv[1] + "/summary.csv")
for r in d.itertuples(): print(f"  n={r.n} it={r.iterations}: {r.status}: {str(r.reason)[:230]}")
PY
}
echo "== faults in a worker"; $P -m bench run --backends faulty --sizes 5,6,7,8,9,11,12,18,19,20,21,16 --iterations 100 --timeout 6 $T --out $W/faults >/dev/null 2>&1; echo "rc=$?"; summ $W/faults
echo "== MemoryError"; $P -m bench run --backends faulty --sizes 16,10,24 --iterations 100 $T --out $W/memerr >/dev/null 2>&1; echo "rc=$?"; summ $W/memerr
echo "== the OOM killer: runner in a 512 MiB memory cgroup (v1)"; G=/sys/fs/cgroup/memory/abmeasure; mkdir -p $G; echo $((512*2**20)) > $G/memory.limit_in_bytes
sh -c "echo \$\$ > $G/cgroup.procs; exec $P -m bench run --backends faulty --sizes 16,17,24 --iterations 100 $T --out $W/oom" >/dev/null 2>&1; echo "rc=$?"; summ $W/oom
echo "== unwritable --out"; mount -t tmpfs -o ro,size=64k tmpfs /tmp/m/ro 2>/dev/null || { mkdir -p /tmp/m/ro; mount -t tmpfs -o ro,size=64k tmpfs /tmp/m/ro; }; touch $W/afile; mkdir -p $W/other; touch $W/other/x
for o in /proc/ab-x /sys/ab-x /tmp/m/ro/run $W/afile/run $W/other; do HOME=$W/home $P -m bench run --backends numpy --sizes 16 --iterations 10 --out $o; echo "  rc=$? home: $(ls -A $W/home 2>/dev/null | wc -l) entries"; done; umount /tmp/m/ro
echo "== disk full: numpy, 20 configurations into a 32 kB tmpfs"; mkdir -p $W/disk /tmp/m/ro; mount -t tmpfs -o size=32k tmpfs $W/disk
S="--backends numpy --sizes $(seq -s, 16 35) --iterations 100 $T"
$P -m bench run $S --out $W/disk/run >/dev/null 2>$W/err; echo "rc=$?"; cat $W/err; wc -l $W/disk/run/*.csv; for f in $W/disk/run/*.csv; do tail -c1 $f | od -c | head -1; done
mount -o remount,size=4m $W/disk; $P -m bench run --resume $W/disk/run 2>&1 | grep -E "^arraybench:|^status"; echo "rc=$?"; wc -l $W/disk/run/summary.csv; umount -l $W/disk
echo "== metadata on a 4 kB tmpfs"; mkdir -p $W/tiny; mount -t tmpfs -o size=4k tmpfs $W/tiny; $P -m bench run $S --out $W/tiny/run; echo "rc=$? left: $(ls -A $W/tiny)"; umount -l $W/tiny
echo "== two writers"; $P -m bench run --backends faulty --sizes 13 --iterations 100,200,300,400,500,600 $T --out $W/lock >$W/first.out 2>&1 & F=$!
while [ "$(cat $W/lock/summary.csv 2>/dev/null | wc -l)" -lt 2 ]; do sleep 0.1; done
$P -m bench run --resume $W/lock; echo "  rc=$?"; $P -m bench run --backends faulty --sizes 13 --iterations 100 $T --out $W/lock; echo "  rc=$?"; wait $F; echo "first rc=$?"; grep ^status $W/first.out
echo "== SIGHUP, then SIGKILL, then resume"; for sig in HUP KILL; do rm -rf $W/s$sig
$P -m bench run --backends faulty --sizes 13 --iterations 100,200,300,400,500,600 $T --out $W/s$sig >$W/s.out 2>&1 & F=$!
while [ "$(cat $W/s$sig/summary.csv 2>/dev/null | wc -l)" -lt 3 ]; do sleep 0.1; done; kill -$sig $F; wait $F; echo "SIG$sig rc=$? rows=$(($(wc -l < $W/s$sig/summary.csv)-1)) lock=$(ls -A $W/s$sig | grep -c lock)"; tail -1 $W/s.out
$P -m bench run --resume $W/s$sig 2>&1 | grep -E "^arraybench:|^status"; done
echo "== tampered"; for t in runid dup noraw; do rm -rf $W/t$t; cp -r $W/sHUP $W/t$t; done
$P - $W <<'PY'
import sys, pandas as pd
w = sys.argv[1]
s = pd.read_csv(f"{w}/trunid/summary.csv"); s.loc[2, "run_id"] = "20000101T000000Z-elsewhere"; s.to_csv(f"{w}/trunid/summary.csv", index=False)
lines = open(f"{w}/tdup/summary.csv").readlines(); open(f"{w}/tdup/summary.csv", "w").writelines(lines + lines[1:2])
r = pd.read_csv(f"{w}/tnoraw/raw.csv"); r[r.iterations != 100].to_csv(f"{w}/tnoraw/raw.csv", index=False)
PY
for t in runid dup noraw; do for c in "run --resume" report; do $P -m bench $c $W/t$t >/dev/null 2>$W/err; echo "  $t $c rc=$?: $(cat $W/err)"; done; done
rmdir $G 2>/dev/null; true
