#!/usr/bin/env python3
"""Helpers of scripts/bench-cluster.sh (run with the test venv's Python).

  create-table ADDR SPLIT...
      Creates YCSB's table (strata-bench ycsb's project, instance, table and
      family `cf` at one version) through ADDR with these initial splits;
      `strata-bench ycsb` then finds it and goes on (it creates its table
      without splits, so a cluster would otherwise hold it in one tablet).
  wait ETCD N [TIMEOUT_S]
      Waits until N servers are live, every tablet is serving on a live
      server, and tablet counts differ by at most one between servers.
      Prints the owners' counts and the seconds waited.
  failover ETCD ADDR RECORDS ID=PID...
      Kills with SIGKILL the first listed server that owns tablets, then
      reads through ADDR one existing YCSB row of each of its tablets,
      every attempt a single ReadRows (no client retries), until each has
      succeeded; prints one JSON line: the victim, whether it was the
      master, the seconds from the kill to each tablet's first successful
      read, and whether the row was found.

  master-failover ETCD RECORDS ID=PID@ADDR...
      Kills with SIGKILL the listed server that is master, then reads
      through another listed server one existing YCSB row of each of the
      killed master's tablets (as failover does); prints one JSON line as
      failover does, with also the seconds until another server is master.

etcd is read through its JSON gateway (/v3/kv/range), the standard library
only; the Bigtable client is google-cloud-bigtable (BIGTABLE_EMULATOR_HOST).
"""

import base64
import bisect
import json
import os
import signal
import sys
import threading
import time
import urllib.request
import warnings

PROJECT, INSTANCE, TABLE, FAMILY = "strata-bench", "bench", "usertable", "cf"
CLUSTER = "strata"
# One probe attempt: long enough for the front server to forward, short
# enough that a stuck attempt does not hide the tablet's return for long.
PROBE_TIMEOUT_S = 1.0
PROBE_PAUSE_S = 0.01
PROBE_GIVE_UP_S = 120.0

warnings.filterwarnings("ignore", "Connecting to Bigtable emulator")


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def etcd_range(etcd, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": b64(prefix), "range_end": b64(end)}).encode()
    req = urllib.request.Request(f"{etcd}/v3/kv/range", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        out = json.load(r)
    return [
        (base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode(), int(kv["create_revision"]))
        for kv in out.get("kvs", [])
    ]


def live_owners(etcd):
    """Live servers as tablet owners: `id@create_revision` -> id."""
    prefix = f"/{CLUSTER}/servers/"
    return {f"{k[len(prefix):]}@{rev}": k[len(prefix):] for k, _, rev in etcd_range(etcd, prefix)}


def master(etcd):
    kvs = etcd_range(etcd, f"/{CLUSTER}/master")
    return kvs[0][1].strip() if kvs else None


def tablets(etcd):
    out = []
    for _, value, _ in etcd_range(etcd, f"/{CLUSTER}/tablets/"):
        rec = dict((line.split(" ", 1) + [""])[:2] for line in value.splitlines() if line)
        unhex = lambda h: b"" if h in ("", "-") else bytes.fromhex(h)
        rec["start_key"] = unhex(rec.get("start", ""))
        rec["end_key"] = None if rec.get("end", "-") == "-" else unhex(rec["end"])
        out.append(rec)
    return out


def wait(etcd, n, timeout):
    started = time.monotonic()
    last = None
    while True:
        try:
            live = live_owners(etcd)
            ts = tablets(etcd)
            counts = {o: 0 for o in live}
            ok = len(live) == n and ts
            for t in ts:
                if t.get("state") != "serving" or t.get("owner") not in live:
                    ok = False
                else:
                    counts[t["owner"]] += 1
            ok = ok and max(counts.values()) - min(counts.values()) <= 1
            last = {live[o]: c for o, c in sorted(counts.items())}
            if ok:
                print(json.dumps({"owners": last, "seconds": round(time.monotonic() - started, 2)}))
                return
        except OSError as e:
            last = f"etcd: {e}"
        if time.monotonic() - started > timeout:
            sys.exit(f"bench-cluster.py wait: not settled and balanced after {timeout} s: {last}")
        time.sleep(0.1)


def create_table(addr, splits):
    os.environ["BIGTABLE_EMULATOR_HOST"] = addr
    from google.cloud import bigtable
    from google.cloud.bigtable import column_family

    client = bigtable.Client(project=PROJECT, admin=True)
    table = client.instance(INSTANCE).table(TABLE)
    table.create(
        initial_split_keys=[s.encode() for s in splits],
        column_families={FAMILY: column_family.MaxVersionsGCRule(1)},
    )


def fnvhash64(val):
    """strata-bench's (YCSB's) fnvhash64 of a non-negative i64."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for _ in range(8):
        h ^= val & 0xFF
        val >>= 8
        h = (h * 1099511628211) & mask
    if h >= 1 << 63:
        h -= 1 << 64
    return h if h == -(1 << 63) else abs(h)


def master_failover(etcd, records, servers):
    """Kills the master among `servers` (ID=PID@ADDR), probing through another."""
    by_id = {}
    for s in servers:
        sid, rest = s.split("=")
        pid, addr = rest.split("@")
        by_id[sid] = (pid, addr)
    m = (master(etcd) or "").split("@")[0]
    if m not in by_id:
        sys.exit(f"bench-cluster.py master-failover: the master {m!r} is not among {sorted(by_id)}")
    front = next(addr for sid, (_, addr) in sorted(by_id.items()) if sid != m)
    t_kill = {}

    def watch_master():
        started = time.monotonic()
        while "t0" not in t_kill:
            if time.monotonic() - started > PROBE_GIVE_UP_S:
                return
            time.sleep(0.001)
        while time.monotonic() - t_kill["t0"] < PROBE_GIVE_UP_S:
            try:
                now = (master(etcd) or "").split("@")[0]
            except OSError:
                now = ""
            if now and now != m:
                t_kill["elected_s"] = round(time.monotonic() - t_kill["t0"], 3)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_master, daemon=True)
    watcher.start()
    failover(etcd, front, records, [f"{m}={by_id[m][0]}"], t_kill)
    watcher.join()


def failover(etcd, addr, records, candidates, t_kill=None):
    os.environ["BIGTABLE_EMULATOR_HOST"] = addr
    from google.cloud import bigtable
    from google.cloud.bigtable_v2.types import ReadRowsRequest

    keys = sorted(f"user{fnvhash64(i)}".encode() for i in range(records))
    live = live_owners(etcd)
    ts = [t for t in tablets(etcd) if t.get("state") == "serving"]
    victim = None
    for cand in candidates:
        sid, pid = cand.split("=")
        mine = [t for t in ts if live.get(t.get("owner")) == sid]
        if mine:
            victim, pid = sid, int(pid)
            break
    if victim is None:
        sys.exit(
            f"bench-cluster.py failover: none of {candidates} owns a serving tablet; live {live}; "
            f"tablets {[(t.get('id'), t.get('owner'), t.get('state')) for t in tablets(etcd)]}"
        )
    # One existing row per tablet (the first YCSB key in its range).
    probes = []
    for t in mine:
        i = bisect.bisect_left(keys, t["start_key"])
        if i < len(keys) and (t["end_key"] is None or keys[i] < t["end_key"]):
            probes.append((t["id"], keys[i]))
    if not probes:
        sys.exit(f"bench-cluster.py failover: {victim}'s tablets hold no YCSB row")

    client = bigtable.Client(project=PROJECT, admin=True)
    data = client.table_data_client
    name = client.instance(INSTANCE).table(TABLE).name

    def read(key):
        """True/False: found or not; raises on any error."""
        req = ReadRowsRequest(table_name=name, rows={"row_keys": [key]}, rows_limit=1)
        found = False
        for resp in data.read_rows(request=req, timeout=PROBE_TIMEOUT_S, retry=None):
            found = found or bool(resp.chunks)
        return found

    for _, key in probes:  # warm: the connection, and the keys are right
        if not read(key):
            sys.exit(f"bench-cluster.py failover: row {key!r} not found before the kill")
    was_master = (master(etcd) or "").split("@")[0] == victim

    results = {}
    errors = {}

    def probe(tid, key, t0):
        attempts = 0
        while time.monotonic() - t0 < PROBE_GIVE_UP_S:
            attempts += 1
            try:
                found = read(key)
                results[tid] = (time.monotonic() - t0, found, attempts)
                return
            except Exception as e:  # noqa: BLE001: any failure is "not yet"
                errors.setdefault(tid, f"{type(e).__name__}: {str(e)[:200]}")
                time.sleep(PROBE_PAUSE_S)

    t0 = time.monotonic()
    if t_kill is not None:
        t_kill["t0"] = t0
    os.kill(pid, signal.SIGKILL)
    threads = [threading.Thread(target=probe, args=(tid, key, t0)) for tid, key in probes]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    secs = [results[tid][0] for tid, _ in probes if tid in results]
    if t_kill is not None:
        deadline = time.monotonic() + PROBE_GIVE_UP_S
        while "elected_s" not in t_kill and time.monotonic() < deadline:
            time.sleep(0.01)
    print(
        json.dumps(
            {
                "elected_s": (t_kill or {}).get("elected_s"),
                "victim": victim,
                "pid": pid,
                "was_master": was_master,
                "tablets": len(mine),
                "probed": len(probes),
                "served_again": len(secs),
                "all_s": round(max(secs), 3) if len(secs) == len(probes) else None,
                "first_s": round(min(secs), 3) if secs else None,
                "per_tablet": {tid: {"s": round(r[0], 3), "found": r[1], "attempts": r[2]} for tid, r in results.items()},
                "missing": sum(1 for r in results.values() if not r[1]),
                "first_error": errors,
            }
        )
    )


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "create-table" and args:
        create_table(args[0], args[1:])
    elif cmd == "wait" and len(args) in (2, 3):
        wait(args[0], int(args[1]), float(args[2]) if len(args) == 3 else 60.0)
    elif cmd == "failover" and len(args) >= 4:
        failover(args[0], args[1], int(args[2]), args[3:])
    elif cmd == "master-failover" and len(args) >= 4:
        master_failover(args[0], int(args[1]), args[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
