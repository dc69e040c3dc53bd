"""curate-and-train on the fixtures twice: a first run, then a run with no new data. Side by side, one invocation.

Each run is a fresh process (as a scheduled run would be) talking to one
Prefect server on 127.0.0.1 (started first, not timed, like the server a
deployment runs against). The second run must do no ingest, scoring or
training work and take under 20% of the first run's time.

    .venv/bin/python benchmarks/flows.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

CHILD = """
import json, sys
from flows.curate import curate_and_train
r = curate_and_train(demo=True, demo_output=sys.argv[1])
print("RESULT " + json.dumps({"no_new_data": bool(r.get("no_new_data")), "stages": [s["stage"] for s in r["stages"]]}))
"""


def main() -> None:
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        import socket
        import urllib.request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "PREFECT_HOME": str(Path(tmp) / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        }
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        rows = []
        for name in ("first run (fixtures, tiny model, ingest -> evaluate)", "second run, no new data"):
            t0 = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(Path(tmp) / "demo")],
                env=env,
                capture_output=True,
                text=True,
                cwd=str(Path(__file__).resolve().parent.parent),
            )
            seconds = time.perf_counter() - t0
            assert out.returncode == 0, out.stderr[-3000:]
            result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
            rows.append((name, seconds, result))
        server.send_signal(2)
        server.wait(timeout=30)
    table = Table(
        "run",
        "wall s",
        "stages that ran",
        "vs first",
        title="curate-and-train, each run a fresh process against a running Prefect server",
    )
    for name, seconds, result in rows:
        table.add_row(name, f"{seconds:.1f}", ", ".join(result["stages"]), f"{seconds / rows[0][1]:.0%}")
    console.print(table)


if __name__ == "__main__":
    main()
