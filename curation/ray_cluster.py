"""Where Ray runs: ``RaySpec`` (an existing cluster by address, or a local one) and ``connect``.

Shared by Ray scoring (``curation.difficulty.ray``) and Ray image probing
(``curation.ingest.images``). Ray is imported here only when Ray is asked for.
"""

from __future__ import annotations

import subprocess

from pydantic import BaseModel, ConfigDict, Field


class RaySpec(BaseModel):
    """Where Ray runs and how much of it the scorer takes."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(
        None, description="an existing cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); None: ray.init() here"
    )
    actors: int = Field(2, ge=1, description="engines in the pool (on GPUs: one per GPU)")
    cpus_per_actor: float = Field(1.0, ge=0)
    gpus_per_actor: float = Field(0.0, ge=0)
    num_cpus: int | None = Field(None, ge=1, description="local cluster only: CPUs it may use (default: all)")


_LOCAL: dict = {}  # the local cluster this process started: {"kept": Kept, "address": str}


def connect(ray_spec: RaySpec):
    """``ray`` connected to the cluster the spec names, or to a local one this process starts once."""
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return sys.modules["ray"]
    if ray_spec.address is None and "ray" in sys.modules:  # too late to hand it our cluster's token: Ray's own
        import ray

        ray.init(num_cpus=ray_spec.num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
        return ray
    if ray_spec.address:
        _check_reachable(ray_spec.address)
    address = ray_spec.address or local_cluster(ray_spec.num_cpus)  # before `import ray`: it reads the token then
    import ray

    ray.init(address=address, configure_logging=False, log_to_driver=False)
    return ray


def local_cluster(num_cpus: int | None) -> str:
    """Start ``ray start --head --block`` under our keeper and return its address.

    Not ``ray.init()``'s own cluster: after a SIGKILL of the driver that one
    leaves its DashboardAgent and RuntimeEnvAgent running (measured, still
    there a minute later); under the keeper the whole process group goes.
    Bound to 127.0.0.1, with a fresh token (Ray's token authentication).
    """
    import atexit
    import os
    import secrets
    import sys
    import time

    from vlmr1.ports import free_port
    from vlmr1.rollout.keeper import Kept

    if _LOCAL:
        return _LOCAL["address"]
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    port = free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "ray"), "start", "--head", "--block"]
    command += [f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats"]
    command += [f"--num-cpus={num_cpus}"] if num_cpus else []
    kept = Kept(command, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(kept.stop)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not _gcs_up(port):
        if kept.poll() is not None or time.monotonic() > deadline:
            kept.stop()
            raise RuntimeError(f"a local Ray cluster did not start (`{' '.join(command)}` exited {kept.poll()})")
        time.sleep(0.2)
    _LOCAL.update(kept=kept, address=address)
    return address


class RayClusterError(ValueError):
    """The cluster a user named does not answer: one line naming the address and what would be right."""


def _gcs_up(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def _check_reachable(address: str) -> None:
    """HOST:PORT must answer within 5 s (``ray.init`` would retry for minutes); 'auto' and ray:// are Ray's."""
    host, _, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not port.isdigit():
        return
    if not _gcs_up(int(port), host or "127.0.0.1", timeout=5.0):
        raise RayClusterError(
            f"ray address {address}: no Ray cluster answers there (start one with `ray start --head --port {port}`, "
            "or leave the address out for a local cluster)"
        )
