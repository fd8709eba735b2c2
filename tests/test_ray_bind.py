"""A local run's Ray listens on loopback only.

A child process starts Ray the way routesweep does (sweep.tuning.cluster.init_ray(None)), runs a
task and an actor (so worker processes exist), and lists every listening TCP socket of itself and
all its descendants: gcs_server, raylet (node manager + object manager), workers, the
runtime-env agent, the dashboard agent and metrics exporter where Ray's full install starts
them, and the driver's own core-worker server. Before the fix they were bound to '::' (all interfaces) and the
runtime-env agent to the machine's external IP.
"""
import ipaddress
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_LIST = """
import json, os, time
import psutil, ray
from sweep.tuning.cluster import init_ray
init_ray(None)

@ray.remote
def pid():
    return os.getpid()

@ray.remote
class Echo:
    def pid(self):
        return os.getpid()

actor = Echo.remote()
pids = {ray.get(actor.pid.remote()), ray.get(pid.remote())}
time.sleep(3)                                   # agents finish opening their ports
me = psutil.Process()
rows = []
for p in [me] + me.children(recursive=True):
    try:
        name = p.name()
        rows += [[p.pid, name, c.laddr.ip, c.laddr.port]
                 for c in p.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    except psutil.Error:                        # a worker that exited meanwhile
        pass
print("LISTEN " + json.dumps({"rows": rows, "workers": sorted(pids)}))
ray.shutdown()
"""


def _loopback(ip: str) -> bool:
    a = ipaddress.ip_address(ip.split("%")[0])
    return a.is_loopback or bool(getattr(a, "ipv4_mapped", None) and a.ipv4_mapped.is_loopback)


def test_loopback_helper():
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("::ffff:127.0.0.1")
    assert not _loopback("::") and not _loopback("0.0.0.0") and not _loopback("192.0.2.2")


@pytest.mark.slow
def test_local_ray_listens_on_loopback_only():
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    p = subprocess.run([sys.executable, "-c", _LIST], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(next(ln[7:] for ln in p.stdout.splitlines() if ln.startswith("LISTEN ")))
    rows = got["rows"]
    names = {r[1] for r in rows}
    # the listing is not vacuous: Ray's core servers and a worker were found
    assert {"gcs_server", "raylet"} <= names, rows
    assert sum(r[1] == "raylet" for r in rows) >= 2, rows      # node manager + object manager
    assert set(got["workers"]) & {r[0] for r in rows}, rows   # a worker's gRPC server
    wide = [r for r in rows if not _loopback(r[2])]
    assert not wide, f"listening beyond loopback: {wide}"
