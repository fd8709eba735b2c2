"""A Ray address that does not answer is bad input: exit 2 and one line naming it, fast.

Before: `--address HOST:PORT` on a closed port (or RAY_ADDRESS, or `auto` with a stale
ray_current_cluster file) sat in Ray's connect loop for > 10 minutes; a run WITHOUT an address
joined whatever cluster a stale (or another user's live) current-cluster file named.

Every test points Ray's temp dir at its own directory (RAY_TMPDIR), so a real
/tmp/ray/ray_current_cluster on this machine is neither read nor written.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from sweep.errors import UserError
from sweep.tuning.cluster import gcs_target, probe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG = 120     # s; the old code waited > 600 s, a fixed one fails in PROBE_S (6 s) + start-up


def closed_port() -> int:
    """A port that nothing listens on: bound, read, closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def ray_tmp():
    """A short Ray temp dir (Unix socket paths under it must stay < 108 bytes)."""
    d = tempfile.mkdtemp(prefix="rs", dir="/tmp")
    os.makedirs(os.path.join(d, "ray"))
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def _stale_file(ray_tmp: str, port: int) -> str:
    path = os.path.join(ray_tmp, "ray", "ray_current_cluster")
    with open(path, "w") as f:
        f.write(f"127.0.0.1:{port}")
    return path


def _env(ray_tmp, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "TMPDIR")}
    return {**env, "RAY_TMPDIR": ray_tmp, **extra}


def _cli(args, env):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "sweep.run", "--smoke-test", "--no-report", *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG)
    return p, time.perf_counter() - t0


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("routesweep: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_closed_port_address_flag_exits_2(tmp_path, ray_tmp):
    port, out = closed_port(), tmp_path / "out"
    p, took = _cli(["--address", f"127.0.0.1:{port}", "--out", str(out)], _env(ray_tmp))
    assert p.returncode == 2, p.stderr[-2000:]
    line = _one_line(p.stderr)
    assert line.startswith("routesweep: error: no Ray cluster answers at")
    assert f"127.0.0.1:{port}" in line and "drop --address" in line
    assert not out.exists()
    print(f"--address closed port: exit 2 after {took:.1f} s")


@pytest.mark.slow
def test_closed_port_ray_address_env_exits_2(tmp_path, ray_tmp):
    port, out = closed_port(), tmp_path / "out"
    p, took = _cli(["--out", str(out)], _env(ray_tmp, RAY_ADDRESS=f"127.0.0.1:{port}"))
    assert p.returncode == 2, p.stderr[-2000:]
    line = _one_line(p.stderr)
    assert line.startswith("routesweep: error: no Ray cluster answers at")
    assert f"127.0.0.1:{port}" in line and "(from RAY_ADDRESS)" in line
    assert not out.exists()
    print(f"RAY_ADDRESS closed port: exit 2 after {took:.1f} s")


@pytest.mark.slow
def test_auto_with_stale_current_cluster_file_exits_2(tmp_path, ray_tmp, monkeypatch, capsys):
    """In-process, because `auto` also falls back to ANY gcs_server running on this machine
    (Ray's legacy lookup); other users' clusters must not decide this test, so that lookup
    answers "none"."""
    from ray._private import services
    from sweep.run import main
    port, out = closed_port(), tmp_path / "out"
    path = _stale_file(ray_tmp, port)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: set())
    assert main(["--smoke-test", "--no-report", "--address", "auto", "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("routesweep: error: no Ray cluster answers at")
    assert "'auto'" in line and f":{port}" in line and path in line
    assert not out.exists()


def test_auto_without_any_cluster_is_user_error(ray_tmp, monkeypatch):
    from ray._private import services
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)                    # no current-cluster file
    monkeypatch.setattr(services, "find_gcs_addresses", lambda: set())
    with pytest.raises(UserError, match="'auto'.*Could not find any running Ray"):
        gcs_target("auto")


@pytest.mark.parametrize("bad", ["nohost", "host:abc", "host:0", "host:70000"])
def test_malformed_address_is_user_error(bad):
    with pytest.raises(UserError, match="Ray address"):
        gcs_target(bad)


def test_probe_open_and_closed_port():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    try:
        assert probe("127.0.0.1", srv.getsockname()[1], seconds=2)
    finally:
        srv.close()
    assert not probe("127.0.0.1", closed_port(), seconds=0.5)


_LOCAL = """
import ray
from sweep.tuning.cluster import init_ray
init_ray(None)
print("GCS", ray.get_runtime_context().gcs_address)
print("TASK", ray.get(ray.remote(lambda: 41 + 1).remote()))
ray.shutdown()
"""


@pytest.mark.slow
def test_no_address_ignores_stale_current_cluster_file(ray_tmp):
    """No --address, no RAY_ADDRESS, a stale file: a local Ray starts (before: Ray dialed the
    file's dead address, 20 x ~40 s)."""
    port = closed_port()
    _stale_file(ray_tmp, port)
    p = subprocess.run([sys.executable, "-c", _LOCAL], cwd=ROOT, env=_env(ray_tmp),
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    gcs = next(ln.split()[1] for ln in p.stdout.splitlines() if ln.startswith("GCS"))
    assert gcs.startswith("127.0.0.1:") and not gcs.endswith(f":{port}")
    assert "TASK 42" in p.stdout
