#!/usr/bin/env python3
"""etcd 3.4 vs chainsmith's Raft cluster, measured on the same machine by one script.

Both clusters run three members on 127.0.0.1 with the same heartbeat and election timeouts
(50 ms / 250 ms by default) and their data directories on the same disk. Two measurements:

  (a) recovery: the time from `kill -9` of the leader until a write succeeds again on a
      surviving member, over --trials trials (median and max). Probes start every --poll-ms
      (5 ms; ours: no faster than a quarter of a core of client processes allows, ~23 ms),
      each with its own --probe-timeout, at most --max-inflight at once, spread over
      the survivors; the first probe that succeeds ends the trial. After each trial the killed
      member is restarted and the script waits until it has caught up.
        etcd:  leader from POST /v3/maintenance/status (the v3 JSON gateway), probe = one
               POST /v3/kv/put on a fresh connection.
        ours:  leader from `client status --json`, `cluster kill NAME`, probe = one
               `client submit --count 1 --timeout 0.25s --node NAME` that exits 0 (its
               process start is part of the probe: see "probe_ms" in the JSON, the same
               probe timed on a healthy cluster).
  (b) closed-loop load: K concurrent writers of small writes (16-byte keys, 16-byte values)
      for --seconds each K in --concurrency: committed writes/s and p50/p99 commit latency.
        etcd:  POST /v3/kv/put (base64 key/value) on one persistent http.client connection
               per worker thread, all to the leader; the threads are spread over several
               client processes (--client-procs) so that Python's GIL is not the ceiling.
               The first --warmup seconds are not counted.
        ours:  `client submit --count N --concurrency K --node LEADER --json`, N sized from a
               short calibration run (also the warm-up) to last about --seconds.

The loads run first, on the fresh cluster, then the trials; before each load and each trial
the script waits until one leader has held for a while with every member on one term.

Prints one markdown table (etcd vs chainsmith, ratio, the issue's goal met or not) and, with
--json FILE, writes every raw number (each trial, each percentile, versions, the machine).

Usage:
  benches/cluster_vs_etcd.py                         # both, 20 trials, K = 1 and 16, 5 s loads
  benches/cluster_vs_etcd.py --quick                 # 5 trials, 2 s loads
  benches/cluster_vs_etcd.py --only etcd --json etcd.json
  benches/cluster_vs_etcd.py --only chainsmith --concurrency 1,16,256
  benches/cluster_vs_etcd.py --chainsmith target/release/chainsmith --dir /var/tmp/bench

Needs: python3 (stdlib only); etcd and etcdctl 3.4 (`apt-get install etcd-server
etcd-client`); `cargo build --release` for target/release/chainsmith. Exit status: 0 when
every measurement ran (whether or not the goals were met), 1 on a failed measurement, 2
when a tool is missing.
"""

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    pass


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def now():
    return time.monotonic()


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of an unsorted list; None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(1, -(-len(s) * p // 100))  # ceil(n * p / 100), at least 1
    return s[int(k) - 1]


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


# --------------------------------------------------------------------------------------------
# Probing: the first success among staggered attempts
# --------------------------------------------------------------------------------------------


def first_success(attempt, targets, poll_s, max_inflight, give_up_s):
    """Starts attempt(target) every poll_s (round-robin over targets, at most max_inflight
    running); returns the monotonic time the first one returned True, or None after give_up_s.
    Waits for the attempts still running before it returns."""
    done = threading.Event()
    lock = threading.Lock()
    first = [None]
    slots = threading.Semaphore(max_inflight)
    threads = []
    attempts = [0, 0]  # started, failed

    def run(target):
        try:
            ok = attempt(target)
        except Exception:
            ok = False
        finally:
            slots.release()
        t = now()
        with lock:
            if ok and first[0] is None:
                first[0] = t
                done.set()
            if not ok:
                attempts[1] += 1

    deadline = now() + give_up_s
    i = 0
    while not done.is_set() and now() < deadline:
        if slots.acquire(timeout=poll_s):
            if done.is_set():
                slots.release()
                break
            th = threading.Thread(target=run, args=(targets[i % len(targets)],), daemon=True)
            th.start()
            threads.append(th)
            attempts[0] += 1
            i += 1
            done.wait(poll_s)
    for th in threads:
        th.join(timeout=30)
    return first[0], attempts[0], attempts[1]


def wait_until(pred, timeout, what, interval=0.05):
    deadline = now() + timeout
    last = None
    while now() < deadline:
        try:
            if pred():
                return
        except Exception as e:  # noqa: BLE001 — keep polling, report the last one
            last = e
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else ""))


# --------------------------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------------------------


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def http_post(port, path, body, timeout, conn=None):
    """POST JSON to 127.0.0.1:port; returns (status, parsed body). Reuses conn when given."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body)
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return r.status, parsed
    finally:
        if own:
            conn.close()


class Etcd:
    """A 3- (or 5-) member etcd cluster on 127.0.0.1, each member a child process."""

    def __init__(self, root, members, heartbeat_ms, election_ms):
        self.root = os.path.join(root, "etcd")
        os.makedirs(self.root, exist_ok=True)
        self.names = [f"m{i}" for i in range(members)]
        ports = free_ports(2 * members)
        self.client_port = {n: ports[2 * i] for i, n in enumerate(self.names)}
        self.peer_port = {n: ports[2 * i + 1] for i, n in enumerate(self.names)}
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.procs = {}
        self.member_id = {}  # name -> member id (string, as the gateway prints it)
        self.initial_cluster = ",".join(f"{n}=http://127.0.0.1:{self.peer_port[n]}" for n in self.names)

    def start(self, name, state="new"):
        cp, pp = self.client_port[name], self.peer_port[name]
        cmd = [
            "etcd",
            "--name", name,
            "--data-dir", os.path.join(self.root, name),
            "--listen-client-urls", f"http://127.0.0.1:{cp}",
            "--advertise-client-urls", f"http://127.0.0.1:{cp}",
            "--listen-peer-urls", f"http://127.0.0.1:{pp}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", "chainsmith-bench",
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap",
            "--log-outputs", os.path.join(self.root, f"{name}.log"),
        ]
        self.procs[name] = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def up(self):
        for n in self.names:
            self.start(n)
        self.wait_healthy(60)
        for n in self.names:
            self.member_id[n] = self.status(n)["header"]["member_id"]

    def kill(self, name):
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait()

    def down(self):
        for name in list(self.procs):
            try:
                self.kill(name)
            except Exception:  # noqa: BLE001
                pass

    def status(self, name, timeout=1.0):
        st, body = http_post(self.client_port[name], "/v3/maintenance/status", {}, timeout)
        if st != 200:
            raise BenchError(f"status {name}: HTTP {st} {body}")
        return body

    def health(self, name, timeout=1.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.client_port[name], timeout=timeout)
        try:
            conn.request("GET", "/health")
            r = conn.getresponse()
            return r.status == 200 and json.loads(r.read()).get("health") in ("true", True)
        finally:
            conn.close()

    def wait_healthy(self, timeout):
        wait_until(lambda: all(self.health(n) for n in self.procs), timeout, "etcd members healthy")

    def leader(self):
        """The name of the member that every live member names as leader, or None."""
        leaders = set()
        for n in self.procs:
            leaders.add(self.status(n).get("leader"))
        if len(leaders) != 1:
            return None
        lid = leaders.pop()
        for n, mid in self.member_id.items():
            if mid == lid:
                return n
        return None

    def put(self, name, key, value, timeout, conn=None):
        st, body = http_post(
            self.client_port[name], "/v3/kv/put", {"key": b64(key), "value": b64(value)}, timeout, conn
        )
        return st == 200 and "error" not in body and "header" in body

    def version(self):
        out = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].replace("etcd Version:", "").strip() if out else "?"


def etcd_recovery(cl, trials, args, probe_timeout_s, rows):
    for t in range(trials):
        settle(cl.leader, lambda: {cl.status(n)["raftTerm"] for n in cl.procs}, "etcd", {}, quiet_s=1.0)
        wait_until(lambda: cl.leader() is not None, 30, "an etcd leader")
        leader = cl.leader()
        if leader is None:
            raise BenchError(f"etcd trial {t}: the leader went away before the kill")
        survivors = [n for n in cl.names if n != leader]
        key = f"recovery/{t}"
        attempt = lambda n: cl.put(n, key, "x", probe_timeout_s)  # noqa: E731
        killed_at = now()
        cl.kill(leader)
        ok_at, started, failed = first_success(
            attempt, survivors, args.poll_ms / 1000, args.max_inflight, args.give_up
        )
        if ok_at is None:
            raise BenchError(f"etcd trial {t}: no write succeeded within {args.give_up} s")
        ms = (ok_at - killed_at) * 1000
        new_leader = None
        try:
            new_leader = cl.leader()
        except Exception:  # noqa: BLE001
            pass
        rows.append({"trial": t, "killed": leader, "new_leader": new_leader, "ms": ms,
                     "probes": started, "probes_failed": failed})
        log(f"  etcd trial {t + 1}/{trials}: killed {leader}, write ok after {ms:.1f} ms "
            f"({started} probes, new leader {new_leader})")
        cl.start(leader, state="existing")
        cl.wait_healthy(60)
        # caught up: the restarted member's raft index reaches the leader's
        def caught_up():
            ld = cl.leader()
            return ld is not None and int(cl.status(leader)["raftIndex"]) >= int(cl.status(ld)["raftIndex"])
        wait_until(caught_up, 60, f"etcd {leader} to catch up")
    return rows


def _etcd_load_proc(port, threads, start_at, warm_end, end_at, value, q, tag):
    """One client process: `threads` closed-loop writers; puts (latencies, errors) on q."""
    lat = [[] for _ in range(threads)]
    errs = [0] * threads

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        body_for = lambda j: json.dumps({"key": b64(f"load/{tag}/{i}/{j % 1000:04d}"), "value": value})  # noqa: E731
        hdr = {"Content-Type": "application/json"}
        j = 0
        while now() < start_at:
            time.sleep(0.0005)
        while True:
            t0 = now()
            if t0 >= end_at:
                break
            try:
                conn.request("POST", "/v3/kv/put", body=body_for(j), headers=hdr)
                r = conn.getresponse()
                raw = r.read()
                ok = r.status == 200 and b'"header"' in raw and b'"error"' not in raw
            except Exception:  # noqa: BLE001
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            t1 = now()
            j += 1
            if t0 >= warm_end and t1 <= end_at:
                if ok:
                    lat[i].append(t1 - t0)
                else:
                    errs[i] += 1
        conn.close()

    ths = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    q.put(([x for l in lat for x in l], sum(errs)))


def etcd_load(cl, k, args):
    leader = cl.leader()
    port = cl.client_port[leader]
    procs_n = max(1, min(k, args.client_procs))
    per = [k // procs_n + (1 if i < k % procs_n else 0) for i in range(procs_n)]
    value = b64("v" * 16)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    start_at = now() + 0.3
    warm_end = start_at + args.warmup
    end_at = warm_end + args.seconds
    ps = [ctx.Process(target=_etcd_load_proc, args=(port, n, start_at, warm_end, end_at, value, q, f"{k}-{i}"))
          for i, n in enumerate(per)]
    cpu0 = os.times()
    for p in ps:
        p.start()
    results = [q.get(timeout=args.seconds + args.warmup + 120) for _ in ps]
    for p in ps:
        p.join()
    cpu1 = os.times()
    lat = [x for r in results for x in r[0]]
    errors = sum(r[1] for r in results)
    client_cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {
        "concurrency": k,
        "leader": leader,
        "client_procs": procs_n,
        "seconds": args.seconds,
        "committed": len(lat),
        "errors": errors,
        "per_s": len(lat) / args.seconds,
        "latency_ms": {
            "p50": percentile(lat, 50) * 1000 if lat else None,
            "p90": percentile(lat, 90) * 1000 if lat else None,
            "p99": percentile(lat, 99) * 1000 if lat else None,
            "max": max(lat) * 1000 if lat else None,
        },
        "client_cpu_s": client_cpu,
    }


def settle(leader, terms, what, res, quiet_s=2.0, timeout=30.0):
    """Waits until one leader has held for quiet_s with every live member on one term; after
    timeout it goes on, noting it in res["unsettled"]."""
    t0 = now()
    since, last = None, None
    while now() - t0 < timeout:
        try:
            ld, ts = leader(), terms()
        except Exception:  # noqa: BLE001
            ld, ts = None, set()
        cur = (ld, tuple(sorted(map(str, ts)))) if ld is not None and len(ts) == 1 else None
        if cur is None or cur != last:
            since, last = now(), cur
        elif now() - since >= quiet_s:
            return
        time.sleep(0.1)
    log(f"  {what}: no steady leader for {quiet_s:g} s within {timeout:g} s; measuring anyway")
    res.setdefault("unsettled", []).append(round(now() - t0, 1))


def probe_timeout(args, probe_ms):
    """--probe-timeout, or 4 healthy probes' time when that is longer (a slow client start)."""
    if probe_ms is None:
        raise BenchError("no probe write succeeded on the healthy cluster")
    t = max(args.probe_timeout, 4 * probe_ms / 1000)
    if t > args.probe_timeout:
        log(f"  probe timeout raised to {t:.3f} s: one healthy probe takes {probe_ms:.0f} ms")
    return t


def probe_baseline(attempt, targets, n=10):
    """Median ms of n sequential successful probes on a healthy cluster."""
    times = []
    for i in range(n):
        t0 = now()
        if attempt(targets[i % len(targets)]):
            times.append((now() - t0) * 1000)
    return statistics.median(times) if times else None


def run_etcd(root, args, res):
    """Fills res as it goes, so that a failure keeps what was measured."""
    cl = Etcd(root, args.members, args.heartbeat_ms, args.election_ms)
    res.update({"system": "etcd", "version": cl.version(), "members": args.members})
    try:
        log(f"etcd {res['version']}: starting {args.members} members in {cl.root}")
        cl.up()
        ld = cl.leader()
        res["probe_ms"] = probe_baseline(lambda n: cl.put(n, "probe", "x", 5.0),
                                         [n for n in cl.names if n != ld])
        res["probe_timeout_s"] = probe_timeout(args, res["probe_ms"])
        res["load"] = []
        for k in args.concurrency:
            settle(cl.leader, lambda: {cl.status(n)["raftTerm"] for n in cl.procs}, "etcd", res)
            r = etcd_load(cl, k, args)
            log(f"  etcd K={k}: {r['per_s']:.0f} writes/s, p50 {fmt(r['latency_ms']['p50'])} ms, "
                f"p99 {fmt(r['latency_ms']['p99'])} ms ({r['errors']} errors, client CPU {r['client_cpu_s']:.1f} s)")
            res["load"].append(r)
        if args.trials > 0:
            rows = res.setdefault("recovery", {}).setdefault("trials", [])
            try:
                etcd_recovery(cl, args.trials, args, res["probe_timeout_s"], rows)
            finally:
                res["recovery"] = summarize_recovery(rows)
    finally:
        cl.down()
    return res


# --------------------------------------------------------------------------------------------
# chainsmith
# --------------------------------------------------------------------------------------------


class Chainsmith:
    """chainsmith's Raft cluster through its CLI (`cluster up/kill/start/down`, `client`)."""

    def __init__(self, binary, root, members, heartbeat_ms, election_range, block_interval_ms, extra):
        self.bin = binary
        self.dir = os.path.join(root, "chainsmith")
        self.members = members
        self.config = os.path.join(self.dir, "cluster.toml")
        self.params = [
            f"heartbeat_ms={heartbeat_ms}",
            f"election_timeout_ms=[{election_range[0]},{election_range[1]}]",
            f"block_interval_ms={block_interval_ms}",
        ] + list(extra)
        self.is_up = False

    def run(self, *argv, timeout=120, check=True):
        cmd = [self.bin, *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise BenchError(f"`{' '.join(cmd)}` exited {p.returncode}: {p.stderr.strip()[-800:]}")
        return p

    def up(self, base_port=None):
        argv = ["cluster", "up", "--rule", "raft", "--nodes", str(self.members), "--dir", self.dir]
        if base_port:  # else `cluster up` picks free ports itself
            argv += ["--base-port", str(base_port)]
        for prm in self.params:
            argv += ["--param", prm]
        self.is_up = True  # `down` in any case from here on
        self.run(*argv, timeout=120)

    def down(self):
        if self.is_up:
            self.run("cluster", "down", "--dir", self.dir, timeout=60, check=False)
            self.is_up = False

    def kill(self, name):
        self.run("cluster", "kill", name, "--dir", self.dir, timeout=30)

    def start(self, name):
        self.run("cluster", "start", name, "--dir", self.dir, timeout=60)

    def status(self):
        p = self.run("client", "--config", self.config, "status", "--json", timeout=30, check=False)
        try:
            return json.loads(p.stdout)
        except ValueError:
            raise BenchError(f"client status --json: not JSON (exit {p.returncode}): {p.stdout[:300]} {p.stderr[-300:]}")

    @staticmethod
    def leader_of(nodes):
        """The leader's name: the answering node whose role is leader (the highest term's, if a
        deposed one still says so). Only `role` and `term` are read: `leader` may be a name or
        an index."""
        live = [n for n in nodes if "error" not in n and str(n.get("role", "")).lower() == "leader"]
        if not live:
            return None
        return max(live, key=lambda n: int(n.get("term") or 0))["name"]

    def names(self):
        return [n["name"] for n in self.status()]

    def submit(self, count, concurrency=1, node=None, timeout=None, proc_timeout=None):
        argv = [self.bin, "client", "--config", self.config, "submit", "--count", str(count),
                "--concurrency", str(concurrency), "--json"]
        if node:
            argv += ["--node", node]
        if timeout is not None:
            argv += ["--timeout", f"{timeout:g}s"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=proc_timeout)

    def probe(self, node, probe_timeout):
        """One write through the client on `node`; True when it committed (exit 0)."""
        argv = [self.bin, "client", "--config", self.config, "submit", "--count", "1", "--node", node,
                "--timeout", f"{probe_timeout:g}s", "--json"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            return p.wait(timeout=probe_timeout) == 0
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return False

    def version(self):
        p = subprocess.run([self.bin, "--version"], capture_output=True, text=True)
        v = (p.stdout or p.stderr).strip().splitlines()
        rev = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return (v[0] if v else "chainsmith") + (f" ({rev.stdout.strip()})" if rev.returncode == 0 else "")


def ours_recovery(cs, trials, args, probe_timeout_s, poll_ms, rows):
    for t in range(trials):
        settle(lambda: cs.leader_of(cs.status()), lambda: {n.get("term") for n in cs.status() if "error" not in n},
               "chainsmith", {}, quiet_s=1.0)
        wait_until(lambda: cs.leader_of(cs.status()) is not None, 30, "a chainsmith leader", interval=0.1)
        nodes = cs.status()
        leader = cs.leader_of(nodes)
        if leader is None:
            raise BenchError(f"chainsmith trial {t}: the leader went away before the kill")
        survivors = [n["name"] for n in nodes if n["name"] != leader]
        killed_at = now()
        cs.kill(leader)
        ok_at, started, failed = first_success(
            lambda n: cs.probe(n, probe_timeout_s), survivors, poll_ms / 1000, args.max_inflight, args.give_up
        )
        if ok_at is None:
            raise BenchError(f"chainsmith trial {t}: no write committed within {args.give_up} s")
        ms = (ok_at - killed_at) * 1000
        after = cs.status()
        new_leader = cs.leader_of(after)
        rows.append({"trial": t, "killed": leader, "new_leader": new_leader, "ms": ms,
                     "probes": started, "probes_failed": failed})
        log(f"  chainsmith trial {t + 1}/{trials}: killed {leader}, write committed after {ms:.1f} ms "
            f"({started} probes, new leader {new_leader})")
        target = max(int(n.get("height", 0)) for n in after if "error" not in n)
        cs.start(leader)

        def caught_up():
            for n in cs.status():
                if n.get("name") == leader and "error" not in n:
                    return int(n.get("height", -1)) >= target
            return False

        wait_until(caught_up, 60, f"chainsmith {leader} to catch up to height {target}", interval=0.1)
    return rows


def ours_load(cs, k, args):
    leader = cs.leader_of(cs.status())
    # calibration, also the warm-up: about a second's worth at the rate it finds
    cal_n = max(20, 10 * k)
    p = cs.submit(cal_n, k, leader, timeout=30, proc_timeout=120)
    try:
        cal = json.loads(p.stdout)
        rate = float(cal["per_s"])
    except (ValueError, KeyError, TypeError):
        raise BenchError(f"client submit calibration: exit {p.returncode}: {p.stdout[:300]} {p.stderr[-500:]}")
    n = max(int(rate * args.seconds), 5 * k, 20)
    p = cs.submit(n, k, leader, timeout=max(30, int(3 * args.seconds)), proc_timeout=args.seconds * 10 + 120)
    try:
        r = json.loads(p.stdout)
    except ValueError:
        raise BenchError(f"client submit: exit {p.returncode}: {p.stdout[:300]} {p.stderr[-500:]}")
    lat = r.get("latency_ms") or {}
    return {
        "concurrency": k,
        "leader": leader,
        "calibration": cal,
        "submitted": r.get("submitted"),
        "committed": r.get("committed"),
        "errors": (r.get("submitted") or 0) - (r.get("committed") or 0),
        "all_committed": p.returncode == 0,
        "seconds": r.get("seconds"),
        "per_s": r.get("per_s"),
        "latency_ms": {q: lat.get(q) for q in ("p50", "p90", "p99", "max")},
        "raw": r,
    }


def run_ours(root, args, res):
    """Fills res as it goes, so that a failure keeps what was measured."""
    cs = Chainsmith(args.chainsmith, root, args.members, args.heartbeat_ms,
                    (args.election_ms, args.ours_election_hi), args.block_interval_ms, args.param)
    res.update({"system": "chainsmith", "version": cs.version(), "members": args.members, "params": cs.params})
    try:
        log(f"chainsmith {res['version']}: cluster up, {args.members} nodes in {cs.dir} ({' '.join(cs.params)})")
        cs.up(args.base_port)
        nodes = cs.status()
        ld = cs.leader_of(nodes)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res["probe_ms"] = probe_baseline(lambda n: cs.probe(n, 5.0), [n["name"] for n in nodes if n["name"] != ld])
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res["probe_cpu_ms"] = ((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)) * 1000 / 10
        res["probe_timeout_s"] = probe_timeout(args, res["probe_ms"])
        # a probe is a client process: start them no faster than a quarter of a core allows
        res["poll_ms"] = max(args.poll_ms, 4 * res["probe_cpu_ms"])
        if res["poll_ms"] > args.poll_ms:
            log(f"  probe interval raised to {res['poll_ms']:.1f} ms: one probe costs {res['probe_cpu_ms']:.1f} ms of CPU")
        res["load"] = []
        for k in args.concurrency:
            settle(lambda: cs.leader_of(cs.status()), lambda: {n.get("term") for n in cs.status() if "error" not in n},
                   "chainsmith", res)
            r = ours_load(cs, k, args)
            log(f"  chainsmith K={k}: {fmt(r['per_s'])} writes/s, p50 {fmt(r['latency_ms']['p50'])} ms, "
                f"p99 {fmt(r['latency_ms']['p99'])} ms ({r['committed']}/{r['submitted']} committed)")
            res["load"].append(r)
        if args.trials > 0:
            rows = res.setdefault("recovery", {}).setdefault("trials", [])
            try:
                ours_recovery(cs, args.trials, args, res["probe_timeout_s"], res["poll_ms"], rows)
            finally:
                res["recovery"] = summarize_recovery(rows)
    finally:
        cs.down()
    return res


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def summarize_recovery(rows):
    ms = [r["ms"] for r in rows]
    if not ms:
        return {"trials": rows}
    return {"trials": rows, "median_ms": statistics.median(ms), "max_ms": max(ms), "min_ms": min(ms),
            "mean_ms": statistics.fmean(ms)}


def fmt(x, digits=None):
    if x is None:
        return "—"
    x = float(x)
    if digits is None:
        digits = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{digits}f}".replace(",", " ")


def table(etcd, ours, concurrency):
    """Markdown rows: metric | etcd | chainsmith | chainsmith / etcd | goal."""
    def get(res, *path):
        cur = res
        for p in path:
            if cur is None:
                return None
            if isinstance(p, int):
                cur = next((r for r in cur if r["concurrency"] == p), None)
            else:
                cur = cur.get(p) if isinstance(cur, dict) else None
        return cur

    ev = (etcd or {}).get("version")
    head = f"| measurement | {'etcd ' + ev if ev else 'etcd'} | chainsmith raft | chainsmith / etcd | goal |"
    lines = [head, "|---|---:|---:|---:|---|"]

    def row(label, e, o, goal, lower_better):
        ratio = (float(o) / float(e)) if (e not in (None, 0) and o is not None) else None
        ok = ""
        if ratio is not None and goal is not None:
            met = ratio <= goal if lower_better else ratio >= goal
            ok = ("met" if met else "missed") + (f" (≤ {goal:g}×)" if lower_better else f" (≥ {goal:g}×)")
        lines.append(f"| {label} | {fmt(e)} | {fmt(o)} | {fmt(ratio, 2) if ratio is not None else '—'} | {ok} |")

    ne, no = len(get(etcd, "recovery", "trials") or []), len(get(ours, "recovery", "trials") or [])
    n = f"{ne}" if (ne == no or not ours) else (f"{no}" if not etcd else f"{ne} / {no}")
    row(f"leader kill -9 → write ok, median ms ({n} trials)", get(etcd, "recovery", "median_ms"),
        get(ours, "recovery", "median_ms"), 1.0, True)
    row("leader kill -9 → write ok, max ms", get(etcd, "recovery", "max_ms"), get(ours, "recovery", "max_ms"),
        1.0, True)
    for k in concurrency:
        big = k > 1
        row(f"K={k}: committed writes/s", get(etcd, "load", k, "per_s"), get(ours, "load", k, "per_s"),
            1.0 if big else 0.5, False)
        row(f"K={k}: p50 commit latency ms", get(etcd, "load", k, "latency_ms", "p50"),
            get(ours, "load", k, "latency_ms", "p50"), 1.0 if big else 2.0, True)
        row(f"K={k}: p99 commit latency ms", get(etcd, "load", k, "latency_ms", "p99"),
            get(ours, "load", k, "latency_ms", "p99"), 1.0 if big else 2.0, True)
    row("one probe write on a healthy cluster, ms (in the recovery time)", get(etcd, "probe_ms"),
        get(ours, "probe_ms"), None, True)
    return "\n".join(lines)


def machine():
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="etcd 3.4 vs chainsmith Raft: leader-kill recovery and closed-loop write load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--only", choices=["etcd", "chainsmith"], help="measure one system only")
    ap.add_argument("--quick", action="store_true", help="5 trials and 2 s loads")
    ap.add_argument("--trials", type=int, default=None, help="leader-kill trials (default 20, --quick 5)")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per load (default 5, --quick 2)")
    ap.add_argument("--concurrency", default="1,16", help="writers per load run, comma-separated")
    ap.add_argument("--members", type=int, default=3, help="cluster size (3 or 5)")
    ap.add_argument("--heartbeat-ms", type=int, default=50)
    ap.add_argument("--election-ms", type=int, default=250,
                    help="etcd --election-timeout; the low end of ours' election_timeout_ms")
    ap.add_argument("--ours-election-hi", type=int, default=None,
                    help="high end of ours' election_timeout_ms range (default 2 × --election-ms "
                         "- heartbeat, etcd's own randomization [E, 2E) in heartbeat ticks)")
    ap.add_argument("--block-interval-ms", type=int, default=10, help="ours' block_interval_ms (1 makes ~700 empty blocks a second)")
    ap.add_argument("--base-port", type=int, default=None,
                    help="ours' first node port (default: `cluster up` picks free ports)")
    ap.add_argument("--param", action="append", default=[], help="extra `--param k=v` for ours' cluster up")
    ap.add_argument("--poll-ms", type=float, default=5.0, help="recovery: a new probe every this often")
    ap.add_argument("--probe-timeout", type=float, default=0.25, help="recovery: seconds one probe may take")
    ap.add_argument("--max-inflight", type=int, default=64, help="recovery: probes running at once")
    ap.add_argument("--give-up", type=float, default=30.0, help="recovery: seconds before a trial fails")
    ap.add_argument("--warmup", type=float, default=0.5, help="etcd load: seconds not counted at the start")
    ap.add_argument("--client-procs", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                    help="etcd load: client processes the writer threads are spread over")
    ap.add_argument("--chainsmith", default=os.path.join(REPO, "target", "release", "chainsmith"),
                    help="the chainsmith binary")
    ap.add_argument("--dir", default=None, help="where the run's data directory is made (default: the system temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--json", metavar="FILE", help="write the raw numbers here")
    args = ap.parse_args(argv)
    if args.trials is None:
        args.trials = 5 if args.quick else 20
    if args.seconds is None:
        args.seconds = 2.0 if args.quick else 5.0
    if args.ours_election_hi is None:
        args.ours_election_hi = 2 * args.election_ms - args.heartbeat_ms
    try:
        args.concurrency = [int(x) for x in args.concurrency.split(",") if x.strip()]
    except ValueError:
        ap.error("--concurrency: comma-separated integers")
    if not args.concurrency or min(args.concurrency) < 1:
        ap.error("--concurrency: positive integers")
    if args.members < 3:
        ap.error("--members: at least 3 (a leader kill must leave a majority)")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    want_etcd = args.only in (None, "etcd")
    want_ours = args.only in (None, "chainsmith")
    if want_etcd and not (shutil.which("etcd") and shutil.which("etcdctl")):
        print("etcd/etcdctl not found: apt-get install etcd-server etcd-client", file=sys.stderr)
        return 2
    if want_ours and not (os.path.isfile(args.chainsmith) and os.access(args.chainsmith, os.X_OK)):
        print(f"{args.chainsmith} not found: cargo build --release (or --chainsmith PATH)", file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP unwind like Ctrl-C, so that the clusters are always taken down
    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)

    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    root = tempfile.mkdtemp(prefix="cluster-vs-etcd-", dir=args.dir)
    out = {
        "command": " ".join(["benches/cluster_vs_etcd.py"] + (sys.argv[1:] if argv is None else argv)),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
    }
    rc = 0
    try:
        for system, wanted, run in (("etcd", want_etcd, run_etcd), ("chainsmith", want_ours, run_ours)):
            if not wanted:
                continue
            try:
                run(root, args, out.setdefault(system, {}))
            except Exception as e:  # noqa: BLE001 — keep the other system's numbers
                log(f"{system}: {e}")
                out[system]["error"] = str(e)
                rc = 1
    except KeyboardInterrupt:
        log("interrupted")
        rc = 130
    finally:
        if args.keep:
            log(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    out["table"] = table(out.get("etcd"), out.get("chainsmith"), args.concurrency)
    print(out["table"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
