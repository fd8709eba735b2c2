"""`ray up` for real: scripts/ray_up_loopback.sh brings up a head and one worker (each its own
network / PID / mount namespace with sshd, see the script's header), runs the smoke sweep there
with `ray exec`, fetches it with `ray rsync-down` and takes everything down with `ray down`.

* its points.parquet equals a local run of the same config (same feature-store cache, one torch
  thread as Ray's ssh commands use), all columns but `trial_id` (Tune names trials after a
  random experiment id);
* the trials ran on the worker (Tune's result rows: node_ip 10.213.0.2);
* nothing is left: no process in the machines' PID namespaces or naming the script's temp dir,
  no namespace, no temp dir, no local-provider state file.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "ray_up_loopback.sh")
WORKER_IP = "10.213.0.2"
pytestmark = pytest.mark.slow


def _why_not() -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    for cmd, pkg in (("sshd", "openssh-server"), ("rsync", "rsync"), ("ip", "iproute2"),
                     ("unshare", "util-linux")):
        if not shutil.which(cmd, path=path):
            return f"'{cmd}' not installed (apt-get install {pkg})"
    if os.geteuid() != 0:
        return "needs root: the cluster's machines are network / PID / mount namespaces"
    r = subprocess.run(["unshare", "--net", "--pid", "--fork", "--mount", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create namespaces here: {r.stderr.strip()}"
    return None


def _processes() -> dict[int, tuple[str, str]]:
    """pid -> (PID namespace, command line) of every process now."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.readlink(f"/proc/{pid}/ns/pid")
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        out[int(pid)] = (ns, cmd)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("rayup")
    cache, storage = tmp / "cache", tmp / "storage"
    common = ["--no-report", "--set", f"cache_dir={cache}"]
    # Ray's ssh runs every command with OMP_NUM_THREADS=1; the store's key has torch's thread
    # count, so the local run uses one thread too and the cluster run hits its cache.
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    local = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--out",
                            str(tmp / "local"), *common], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=1800)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]

    before = _processes()
    r = subprocess.run(["bash", SCRIPT, "--out", str(tmp / "cluster"), "--", *common,
                        "--set", f"sweep.storage_path={storage}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=2400)
    after = _processes()
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-6000:]
    return {"local": tmp / "local", "cluster": tmp / "cluster", "storage": storage, "log": log,
            "before": before, "after": after}


def _points(d):
    df = pd.read_parquet(d / "points.parquet").drop(columns=["trial_id"])
    return df.sort_values(["point_id", "severity"]).reset_index(drop=True)


def test_points_equal_a_local_run(runs):
    m = json.load(open(runs["cluster"] / "manifest.json"))
    assert m["status"] == "complete" and all(t["status"] == "ok" for t in m["trials"])
    assert all(part["cache_hit"] for part in m["feature_store"].values())  # the same store
    local, cluster = _points(runs["local"]), _points(runs["cluster"])
    assert len(cluster) > 0 and set(cluster.method) >= {"gater", "em_router"}
    pd.testing.assert_frame_equal(cluster, local, check_exact=True)


def test_trials_ran_on_the_worker(runs):
    rows = []
    for f in glob.glob(str(runs["storage"] / "tune" / "**" / "result.json"), recursive=True):
        rows += [json.loads(line) for line in open(f) if line.strip()]
    m = json.load(open(runs["cluster"] / "manifest.json"))
    assert len({r["trial_id"] for r in rows}) == len(m["trials"]) == 4
    assert {r["node_ip"] for r in rows} == {WORKER_IP}   # the head has --num-cpus=0


def test_ray_status_needs_the_token(runs):
    assert "Active:" in runs["log"] and "wrong token: refused" in runs["log"]


def test_nothing_left_behind(runs):
    work = re.search(r"workdir (/tmp/rayup\.\w+), cluster (\S+),", runs["log"])
    assert work, runs["log"][:2000]
    workdir, name = work.group(1), work.group(2)
    own_ns = os.readlink("/proc/self/ns/pid")
    new = {p: v for p, v in runs["after"].items() if p not in runs["before"]}
    alive = _processes()
    left = {p: cmd for p, (ns, cmd) in new.items()
            if p in alive and alive[p] == (ns, cmd) and (ns != own_ns or workdir in cmd)}
    assert not left, left
    assert not os.path.exists(workdir)
    assert not glob.glob(f"/tmp/ray/cluster-{name}.*")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name.rsplit("-", 1)[1] not in netns
