"""Launch training as a managed subprocess: its own session, logs streamed, the whole process group killed on cancel.

``torchrun`` (default) or ``accelerate launch`` start the workers; a single
process runs plain ``python -m training.grpo`` with the rendezvous variables
DeepSpeed needs (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
without them it tries MPI). Cancelling (SIGINT/SIGTERM to this process, or
the timeout) sends SIGTERM to the group, then SIGKILL after a grace period:
no worker outlives the launcher. DeepSpeed's /dev/shm buffers created by
the run are removed afterwards.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from training.extensions import extension_env
from training.outputs import checkpoints
from vlmr1.ports import free_port
from vlmr1.report import StageReport

SHM_GLOB = "/dev/shm/deepspeed_allreduce_buffer_*"
STEP = re.compile(r"VLMR1_STEP (\d+)/(\d+)")  # the trainer's progress line (a progress bar may come first on it)


@dataclass
class LaunchSpec:
    config: str
    manifest: str
    output: str
    nprocs: int = 1
    launcher: str = "torchrun"  # torchrun | accelerate (used when nprocs > 1 or num_machines > 1)
    num_machines: int = 1
    machine_rank: int = 0
    main_address: str = "127.0.0.1"
    main_port: Optional[int] = None
    resume: bool = False

    def __post_init__(self) -> None:
        # the trainer runs from the package directory: paths are made absolute against the caller's directory
        self.config, self.manifest, self.output = (
            str(Path(p).resolve()) for p in (self.config, self.manifest, self.output)
        )

    def command(self) -> tuple[list[str], dict]:
        port = self.main_port or free_port()
        args = ["-m", "training.grpo", "--config", self.config, "--manifest", self.manifest, "--output", self.output]
        if self.resume:
            args.append("--resume")
        env = {"PYTHONUNBUFFERED": "1", "MASTER_ADDR": self.main_address, "MASTER_PORT": str(port)}
        # DeepSpeed compiles ops on first use (a minute on CPU): one folder per environment and one ninja, for every
        # entry point
        env.update(extension_env())
        if self.nprocs == 1 and self.num_machines == 1:
            return [sys.executable, *args], {
                **env,
                "RANK": "0",
                "WORLD_SIZE": "1",
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
            }
        if self.launcher == "accelerate":
            cmd = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                "--use_deepspeed",
                "--num_processes",
                str(self.nprocs * self.num_machines),
                "--num_machines",
                str(self.num_machines),
                "--machine_rank",
                str(self.machine_rank),
                "--main_process_ip",
                self.main_address,
                "--main_process_port",
                str(port),
                "--module",
                "training.grpo",
                *args[2:],
            ]
            return cmd, env
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            str(self.nprocs),
            "--nnodes",
            str(self.num_machines),
            "--node_rank",
            str(self.machine_rank),
            "--master_addr",
            self.main_address,
            "--master_port",
            str(port),
            *args,
        ]
        return cmd, env


@dataclass
class LaunchResult:
    returncode: int
    log: str
    result: Optional[dict] = None
    last_error: Optional[str] = None
    cancelled: bool = False
    seconds: float = 0.0
    tail: list[str] = field(default_factory=list)
    last_step: str | None = None  # "i/n" of the last VLMR1_STEP line

    def report(self) -> StageReport:
        """Steps, checkpoint, reward log and its per-step curve, sampler warnings."""
        from training.reward_log import reward_curve

        r = self.result or {}
        curve = reward_curve(r["reward_log"]) if r.get("reward_log") else []
        files = {k: str(r[k]) for k in ("final", "reward_log") if r.get(k)} | {"log": self.log}
        counts = {"global step": r.get("global_step"), "exit": self.returncode}
        return StageReport(
            "train",
            "GRPO training",
            counts,
            tables={"training curve": curve},
            files=files,
            timings={"train": self.seconds},
            notes=[f"trained to step {r.get('global_step')}: {r.get('final')}"] * bool(r)
            + [f"warning: {w}" for w in r.get("warnings", [])],
        )


def stopped_at(r: LaunchResult, output: str | Path) -> str:
    """Where a cancelled run stopped, and how to go on: its last step line and its last checkpoint."""
    where = f"training stopped at step {r.last_step}" if r.last_step else "training stopped before its first step"
    saved = checkpoints(output)
    if not saved:
        return f"{where}, no checkpoint saved; the same command with --overwrite starts again"
    return f"{where}; the same command with --resume continues from {saved[-1][1].name}"


def _kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the launched process, its group and every descendant (torchrun puts workers in sessions of their own),
    then SIGKILL."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        with _quiet():
            p.send_signal(signal.SIGTERM)
    with _quiet():
        os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with _quiet():
            p.kill()
    with _quiet():
        os.killpg(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=grace)


def _quiet():
    import contextlib

    import psutil

    return contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess, PermissionError)


def run(
    spec: LaunchSpec,
    *,
    log_path: str | Path | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
) -> LaunchResult:
    """Run training to the end (or timeout/cancel); every line goes to the log file and ``on_line``."""
    cmd, extra = spec.command()
    log_path = Path(log_path or Path(spec.output) / "train.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shm_before = set(glob.glob(SHM_GLOB))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **extra},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
        cwd=str(Path(__file__).resolve().parent.parent),
        preexec_fn=_die_with_parent,
    )
    if on_line:
        on_line(f"VLMR1_LAUNCHED pid={proc.pid} pgid={proc.pid} cmd={' '.join(cmd)}")
    watch = _Watch(proc, t0, timeout, on_line)

    def cancel(signum, frame):
        watch.cancelled = True
        _kill_group(proc)

    previous = {s: signal.signal(s, cancel) for s in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
    try:
        with open(log_path, "a") as log:
            watch.follow(log)
        proc.wait()
    finally:
        if proc.poll() is None or watch.cancelled:
            _kill_group(proc)
            proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
        for f in set(glob.glob(SHM_GLOB)) - shm_before:
            Path(f).unlink(missing_ok=True)
    last_error = watch.last_error if proc.returncode else None
    seconds = time.monotonic() - t0
    return LaunchResult(
        proc.returncode, str(log_path), watch.result, last_error, watch.cancelled, seconds, watch.tail, watch.step
    )


@dataclass
class _Watch:
    """What the launcher learns from the training output: the result line, the last error, the tail, a timeout."""

    proc: subprocess.Popen
    t0: float
    timeout: float | None
    on_line: Callable[[str], None] | None
    result: dict | None = None
    last_error: str | None = None
    tail: list[str] = field(default_factory=list)
    cancelled: bool = False
    step: str | None = None

    def follow(self, log) -> None:
        """Copy every line to ``log`` and ``on_line`` until the process ends or the timeout passes."""
        import json

        for line in self.proc.stdout:
            log.write(line)
            log.flush()
            line = line.rstrip("\n")
            self.tail = (self.tail + [line])[-40:]
            step = STEP.search(line)
            if step:
                self.step = f"{step[1]}/{step[2]}"
            if line.startswith("VLMR1_RESULT "):
                self.result = json.loads(line[len("VLMR1_RESULT ") :])
            if "Error" in line or "error:" in line:
                self.last_error = line
            if self.on_line:
                self.on_line(line)
            if self.timeout is not None and time.monotonic() - self.t0 > self.timeout:
                self.cancelled = True
                _kill_group(self.proc)
                return


def _die_with_parent() -> None:
    """In the child: SIGTERM when the launching process dies (Linux), so a killed flow run or worker never orphans
    training.

    Signal handlers can only be installed on the main thread; Prefect runs tasks on others. This covers that case.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Launch GRPO training as a managed process group")
    ap.add_argument("--config", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--nprocs", type=int, default=1)
    ap.add_argument("--launcher", default="torchrun", choices=["torchrun", "accelerate"])
    ap.add_argument("--num-machines", type=int, default=1)
    ap.add_argument("--machine-rank", type=int, default=0)
    ap.add_argument("--main-address", default="127.0.0.1")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--timeout", type=float)
    args = ap.parse_args(argv)
    spec = LaunchSpec(
        args.config,
        args.manifest,
        args.output,
        args.nprocs,
        args.launcher,
        args.num_machines,
        args.machine_rank,
        args.main_address,
        resume=args.resume,
    )
    r = run(spec, timeout=args.timeout, on_line=lambda line: print(line, flush=True))
    if r.returncode:
        print(
            f"training failed (exit {r.returncode}){': ' + r.last_error if r.last_error else ''}; log: {r.log}",
            file=sys.stderr,
        )
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
