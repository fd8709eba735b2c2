"""Scale-out on one machine: a multi-node Ray cluster (ray.cluster_utils.Cluster), a worker node
lost mid-sweep, and a driver killed with SIGKILL then `--resume`d.

Every run uses the same tiny config and one shared storage (a file:// URI, as s3:// would be):

* A, the reference: on a cluster of a CPU-less head and two 1-CPU workers (trials are pinned
  to the workers by resources, one per worker at a time); the feature store is built by Ray
  tasks on the workers (`--features-on cluster`) and pushed to STORAGE/cache.
* B: same cluster, a new cache_dir (the store comes back from STORAGE/cache); the worker running
  a gater trial that has checkpointed is removed; the trial resumes from its checkpoint on the
  other worker (max_failures 1). B's tables equal A's to the bit.
* C: a local Ray; the driver's process group is SIGKILLed once a trial has finished and another
  has checkpointed; `--resume` finishes the rest. C's tables equal A's; trials finished before
  the kill are not re-run (same trial ids, their result.json untouched).
* D: as C, but killed in the middle of an EM trial (a round checkpoint on disk, no final one);
  the EM trial resumes from its round checkpoint. D's tables (both families) equal A's.
* E: a local Ray; the Ray worker process running an EM trial mid-EM is SIGKILLed; Tune's retry
  (max_failures 1) resumes it from its round checkpoint. E's tables equal A's.

EM runs EM_ITERS rounds (no early stop) on small router batches, so an EM trial lasts seconds
and a kill can land between two of its rounds.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 4
ARGS = ["--smoke-test", "--no-report", "--set", "data.name=synthetic",
        "--set", "data.synthetic_n=120", "--set", "exits.batch_size=32",
        "--set", "gater.batch_size=2", "--set", f"gater.epochs={EPOCHS}",
        "--set", "gater.seeds=[0,1]", "--set", "experts.cost_source=given",
        "--set", "experts.given_latency_ms=[1,4,2]", "--set", "experts.given_gater_ms=0.2"]
EM_ITERS = 12
ARGS += ["--set", f"exits.em_iters={EM_ITERS}", "--set", "exits.em_tol=0",
         "--set", "exits.router_epochs=6", "--set", "exits.router_batch_size=8"]
N_TRIALS = 6                                    # 2 λ x 2 seeds gater + 2 λ EM
pytestmark = pytest.mark.slow


def _start(out, cache, storage, *extra, new_session=False):
    env = {**os.environ, "PYTHONPATH": ROOT}
    cmd = [sys.executable, "-m", "sweep.run", *ARGS, "--out", str(out), "--set",
           f"cache_dir={cache}", "--set", f"sweep.storage_path={storage}", *extra]
    log = open(f"{out}.log", "w")
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=new_session)


def _finish(p, out, timeout=1200):
    rc = p.wait(timeout=timeout)
    assert rc == 0, open(f"{out}.log").read()[-4000:]


def _points(out):
    key = ["point_id", "severity"]
    df = pd.read_parquet(os.path.join(out, "points.parquet"))
    return df.sort_values(key).reset_index(drop=True).drop(columns=["trial_id"])


def _manifest(out):
    with open(os.path.join(out, "manifest.json")) as f:
        return json.load(f)


def _experiment(out):
    """Local path of the run's Tune experiment (storage is a file:// URI) or None yet."""
    try:
        return _manifest(out)["storage"]["experiment"].replace("file://", "")
    except (OSError, ValueError, KeyError):
        return None


def _last_rows(trial_dir):
    try:
        with open(os.path.join(trial_dir, "result.json")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


# --------------------------------------------------------------------------- A and B: cluster

def _node_of(cluster, workers, pid):
    import psutil
    try:
        ancestors = {p.pid for p in psutil.Process(pid).parents()}
    except psutil.Error:
        return None
    return next((w for w in workers
                 if w.all_processes["raylet"][0].process.pid in ancestors), None)


def _remove_node_of_checkpointed_trial(p, out, cluster, workers):
    """Wait until a gater trial has checkpointed mid-run; remove the node it runs on."""
    while p.poll() is None:
        exp = _experiment(out)
        for ck in glob.glob(f"{exp}/gater*/checkpoint_000000") if exp else []:
            rows = _last_rows(os.path.dirname(ck))
            node = rows and rows[-1]["training_iteration"] < EPOCHS and _node_of(
                cluster, workers, rows[-1]["pid"])
            if node:
                cluster.remove_node(node)
                return os.path.basename(os.path.dirname(ck))
        time.sleep(0.05)
    return None


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    return "file://" + str(tmp_path_factory.mktemp("shared_storage"))


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory, storage):
    from ray.cluster_utils import Cluster
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = ROOT                  # the nodes' workers import sweep/trainers
    tmp = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3,
                           "health_check_initial_delay_ms": 0}})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]      # 1 trial each
        cluster.wait_for_nodes()
        extra = ("--address", cluster.address, "--features-on", "cluster")
        too_big = _start(tmp / "gpu", tmp / "cache_gpu", storage, *extra,
                         "--set", "sweep.gpus_per_trial=1")
        too_big = (too_big.wait(timeout=120), open(f"{tmp / 'gpu'}.log").read(), tmp)
        a = tmp / "a"
        _finish(_start(a, tmp / "cache_a", storage, *extra), a)
        b = tmp / "b"
        p = _start(b, tmp / "cache_b", storage, *extra)
        victim = _remove_node_of_checkpointed_trial(p, b, cluster, workers)
        _finish(p, b)
    finally:
        cluster.shutdown()
        os.environ.pop("PYTHONPATH") if old_path is None else os.environ.update(
            PYTHONPATH=old_path)
    return a, b, victim, too_big


def test_more_gpus_per_trial_than_any_node_of_the_cluster(cluster_runs):
    rc, log, tmp = cluster_runs[3]
    assert rc == 2 and log.strip().splitlines()[-1].startswith("routesweep: error:"), log
    assert "gpus_per_trial=1" in log and "no node of this cluster" in log
    assert not (tmp / "gpu").exists() and not (tmp / "cache_gpu").exists()


def test_features_built_by_ray_tasks_and_reused_from_shared_storage(cluster_runs, storage):
    a, b = cluster_runs[:2]
    fa, fb = _manifest(a)["feature_store"], _manifest(b)["feature_store"]
    assert set(fa) == {"experts", "exits"}
    for part in fa:
        assert fa[part]["built_on"]["node_id"] and not fa[part]["cache_hit"]
        assert fa[part]["pushed_to_shared_cache"]
        assert fb[part]["from_shared_cache"] and not fb[part]["pushed_to_shared_cache"]
    assert fa["experts"]["built_on"]["node_id"] != fa["exits"]["built_on"]["node_id"]  # parallel
    root = storage.replace("file://", "")
    assert len(glob.glob(f"{root}/cache/*/MANIFEST.json")) == 2
    assert len(glob.glob(f"{root}/results/*/points.parquet")) >= 2


def test_node_loss_mid_sweep_gives_the_unfailed_results(cluster_runs):
    a, b, victim = cluster_runs[:3]
    assert victim is not None, "the sweep ended before a node could be removed"
    trials = _manifest(b)["trials"]
    assert len(trials) == N_TRIALS and all(t["status"] == "ok" for t in trials)
    assert any(t["restored"] for t in trials), trials           # resumed from a checkpoint
    assert _manifest(b)["status"] == "complete"
    pd.testing.assert_frame_equal(_points(a), _points(b), check_exact=True)


# --------------------------------------------------------------------------- C: SIGKILL + resume

def _trial_states(exp):
    """{trial_id: (status, start time)} from the newest saved experiment state."""
    files = sorted(glob.glob(f"{exp}/experiment_state-*.json"), key=os.path.getmtime)
    try:
        with open(files[-1]) as f:
            data = json.load(f)["trial_data"]
    except (IndexError, OSError, ValueError, KeyError):
        return {}
    load = lambda x: json.loads(x) if isinstance(x, str) else x
    return {load(t)["trial_id"]: (load(t)["status"], load(meta)["start_time"])
            for t, meta in data}


def _kill_when_one_finished_and_one_checkpointed(p, out):
    while p.poll() is None:
        exp = _experiment(out)
        states = _trial_states(exp) if exp else {}
        done = {t: start for t, (s, start) in states.items() if s == "TERMINATED"}
        running = [t for t, (s, _) in states.items() if s == "RUNNING" and
                   glob.glob(f"{exp}/*_{t[-5:]}/checkpoint_000000")]
        if done and running:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return exp, done
        time.sleep(0.05)
    return None, {}


def test_driver_sigkill_then_resume(cluster_runs, storage, tmp_path):
    a = cluster_runs[0]
    c = tmp_path / "c"
    p = _start(c, tmp_path / "cache_c", storage, new_session=True)
    exp, done = _kill_when_one_finished_and_one_checkpointed(p, c)
    assert exp, "the sweep ended before the driver could be killed: " + open(f"{c}.log").read()
    assert _manifest(c)["status"] == "running"
    dirs = {t: glob.glob(f"{exp}/*_{t[-5:]}")[0] for t in done}
    before = {t: _last_rows(d) for t, d in dirs.items()}
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--resume", str(c), "--no-report"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = _manifest(c)
    assert m["status"] == "complete" and m["resumed"]
    assert len(m["trials"]) == N_TRIALS and all(t["status"] == "ok" for t in m["trials"])
    assert set(done) <= {t["trial_id"] for t in m["trials"]}
    after = _trial_states(exp)
    for t, start in done.items():          # not re-run: same start, no new result rows
        assert after[t] == ("TERMINATED", start), t
        assert _last_rows(dirs[t]) == before[t], t
    pd.testing.assert_frame_equal(_points(a), _points(c), check_exact=True)


# --------------------------------------------------------------------------- D, E: mid-EM kills

def _em_mid_run(exp):
    """(trial dir, last result) of an EM trial that the newest SAVED experiment state shows
    running with a round checkpoint (what a restore starts from; result.json on storage may
    lag) and at most halfway through its rounds, so it is still mid-EM when the kill lands."""
    files = sorted(glob.glob(f"{exp}/experiment_state-*.json"), key=os.path.getmtime)
    try:
        with open(files[-1]) as f:
            data = json.load(f)["trial_data"]
    except (IndexError, OSError, ValueError, KeyError):
        return None, None
    load = lambda x: json.loads(x) if isinstance(x, str) else x
    for t, meta in data:
        t, last = load(t), load(meta).get("last_result") or {}
        if (t["status"] == "RUNNING" and t["config"]["point"]["family"] == "exits"
                and last.get("checkpoint_dir_name") and "done_em" not in last
                and last.get("epoch", EM_ITERS) <= EM_ITERS // 2):
            return glob.glob(f"{exp}/*_{t['trial_id'][-5:]}")[0], last
    return None, None


def _wait_mid_em(p, out):
    while p.poll() is None:
        exp = _experiment(out)
        d, row = _em_mid_run(exp) if exp else (None, None)
        if d:
            return d, row
        time.sleep(0.02)
    return None, None


def _final_checkpoints(trial_dir):
    return glob.glob(f"{trial_dir}/checkpoint_*/decisions.npz")


def _resumed_from_a_round(trial_dir):
    """The trial's rows show a restart (iterations_since_restore back to 1) at a round > 1:
    it continued from a round checkpoint, not from scratch."""
    return [r["epoch"] for r in _last_rows(trial_dir)
            if r.get("iterations_since_restore") == 1 and r["training_iteration"] > 1]


def _complete_and_equal(a, out, victim):
    m = _manifest(out)
    assert m["status"] == "complete", m["status"]
    assert len(m["trials"]) == N_TRIALS and all(t["status"] == "ok" for t in m["trials"]), \
        m["trials"]
    tid = _last_rows(victim)[-1]["trial_id"]
    assert next(t for t in m["trials"] if t["trial_id"] == tid)["restored"]
    assert _resumed_from_a_round(victim), _last_rows(victim)
    pa, pb = _points(a), _points(out)
    assert set(pb.family) == {"experts", "exits"}
    pd.testing.assert_frame_equal(pa, pb, check_exact=True)


def test_driver_sigkill_mid_em_then_resume(cluster_runs, storage, tmp_path):
    a = cluster_runs[0]
    d = tmp_path / "d"
    p = _start(d, tmp_path / "cache_d", storage, new_session=True)
    victim, row = _wait_mid_em(p, d)
    assert victim, "no EM trial was caught mid-EM: " + open(f"{d}.log").read()[-3000:]
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(1)
    assert not _final_checkpoints(victim), "the EM trial finished before the kill"
    env = {**os.environ, "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-m", "sweep.run", "--resume", str(d), "--no-report"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _manifest(d)["resumed"]
    _complete_and_equal(a, d, victim)


def test_worker_killed_mid_em_retries_from_its_round_checkpoint(cluster_runs, storage,
                                                                tmp_path):
    import psutil
    a = cluster_runs[0]
    e = tmp_path / "e"
    p = _start(e, tmp_path / "cache_e", storage)
    victim, row = _wait_mid_em(p, e)
    assert victim, "no EM trial was caught mid-EM: " + open(f"{e}.log").read()[-3000:]
    assert psutil.Process(row["pid"]).name().startswith("ray::"), "not a Ray worker"
    os.kill(row["pid"], signal.SIGKILL)
    _finish(p, e)
    assert len(_final_checkpoints(victim)) == 1
    _complete_and_equal(a, e, victim)
