"""Test helpers shared by several test modules (importable: tests/conftest.py puts tests/ on sys.path)."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from curation import catalog

REPO = Path(__file__).resolve().parents[1]


def run_vlmr1(*args, columns: int = 250, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """The ``vlmr1`` command of this environment, as a user runs it (text output, a wide terminal)."""
    vlmr1 = os.path.join(os.path.dirname(sys.executable), "vlmr1")
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run([vlmr1, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def rows(db, sql, *args):
    """All rows of one query on a catalog file."""
    with catalog.connect(db) as con:
        return con.execute(sql, list(args)).fetchall()


def kill_at_marker(script: str, args: list, marker, timeout: float, what: str, before_kill=None) -> None:
    """Run ``python -c script *args``; SIGKILL it once it writes ``marker`` (it then sleeps there), and reap it.
    ``before_kill()`` runs between the marker and the kill (to look at what the child started)."""
    child = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], start_new_session=True)
    deadline = time.monotonic() + timeout
    while not marker.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), f"child never reached {what}"
    if before_kill is not None:
        before_kill()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()


def coco_and_refcoco_catalog(root, n_coco: int, n_refcoco: int, recipes=("none", "default", "strict")):
    """A catalog with a COCO and a RefCOCO fixture ingested, images probed, ``recipes`` evaluated; return its path."""
    from curation.demo.fixtures import make_coco, make_refcoco
    from curation.ingest import ingest
    from curation.ingest.images import ImageCheck
    from curation.quality.apply import evaluate_recipe
    from curation.quality.recipe import load_recipe

    db = root / "c.duckdb"
    ingest("coco", db, make_coco(root / "coco", n_images=n_coco), images=ImageCheck([root / "coco"]))
    ingest(
        "refcoco",
        db,
        make_refcoco(root / "refer", n_images=n_refcoco),
        images=ImageCheck([root / "refer" / "train2014"]),
    )
    for name in recipes:
        evaluate_recipe(db, load_recipe(name))
    return db


def prefect_api(env: dict, route: str, body: dict):
    """POST ``body`` to a Prefect server's REST route (``/flow_runs/filter``, ...) and return the decoded answer."""
    import json

    request = urllib.request.Request(
        env["PREFECT_API_URL"] + route, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def start_prefect_server(home: Path, **extra_env: str) -> tuple[dict, subprocess.Popen]:
    """A real Prefect server on 127.0.0.1 with its own home (SQLite), healthy; (its client env, the process)."""
    from vlmr1.ports import free_port

    port = free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        # a served deployment's run starts within 2 s of `prefect deployment run` (the runner's default: 10)
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        **extra_env,
    }
    prefect = str(Path(sys.executable).parent / "prefect")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=open(home / "server.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return env, server
        except OSError:
            assert time.monotonic() < deadline and server.poll() is None, (home / "server.log").read_text()[-2000:]
            time.sleep(0.5)


def stop_in_order(*procs: subprocess.Popen | None) -> None:
    """Stop processes we started, by pid and in the order given (a worker before its server): SIGINT, then the
    group's SIGKILL after 30 s."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class ChatServer:
    """A chat-completions server on 127.0.0.1: scripted answers per question (the first key found in the prompt's
    text, or ``choose(request body)``'s), optional failures first. ``tokenizer``: answers are cut at the request's
    ``max_tokens`` as a real server cuts them."""

    def __init__(self, answers: dict, fail_first: int = 0, refuse: bool = False, tokenizer=None, choose=None):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers, self.fail_first, self.refuse, self.calls, self.payloads = answers, fail_first, refuse, 0, []
        self.tokenizer = tokenizer
        owner = self

        def cut(text: str, limit: int | None) -> str:
            if tokenizer is None or limit is None:
                return text
            return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:limit])

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.calls += 1
                owner.payloads.append(body)
                if owner.refuse:
                    return self._send(400, {"error": {"message": "model 'nope' does not exist"}})
                if owner.calls <= owner.fail_first:
                    return self._send(503, {"error": {"message": "warming up"}})
                text = next(c["text"] for c in body["messages"][0]["content"] if c["type"] == "text")
                chosen = choose(body) if choose else next((v for k, v in owner.answers.items() if k in text), None)
                script = chosen or ["<think>?</think><answer>None</answer>"]
                choices = [
                    {"index": i, "message": {"role": "assistant",
                                             "content": cut(script[i % len(script)], body.get("max_tokens"))}}
                    for i in range(body["n"])
                ]  # fmt: skip
                self._send(200, {"choices": choices, "usage": {"completion_tokens": 5 * body["n"]}})

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def vlmr1_in_process(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """``vlmr1 ARGS`` through the console script's entry point (what turns errors into lines), in this process:
    (exit code, stdout, stderr)."""
    from flows.cli import run

    monkeypatch.setattr(sys, "argv", ["vlmr1", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "250")
    code = 0
    try:
        run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@dataclass
class PrefectHome:
    """A running Prefect server's environment and home, and the serving process of our deployments
    (``python -m flows.serve``)."""

    env: dict
    home: Path
    serve: subprocess.Popen | None = None

    def start_serve(self) -> None:
        self.serve = subprocess.Popen(
            [sys.executable, "-m", "flows.serve"], env=self.env, cwd=str(REPO),
            stdout=open(self.home / "serve.log", "a"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "curate-and-train/demo" not in prefect_cli(self.env, "deployment", "ls").stdout:
            assert time.monotonic() < deadline, (self.home / "serve.log").read_text()[-3000:]
            time.sleep(1)


def served_prefect(home: Path):
    """A Prefect server serving our deployments (demo output under ``home/out``); stopped, serve first, after."""
    env, server = start_prefect_server(home, VLMR1_DEMO_OUTPUT=str(home / "out"))
    state = PrefectHome(env, home)
    state.start_serve()
    try:
        yield state
    finally:
        stop_in_order(state.serve, server)  # the serving process before its server


def prefect_cli(env, *args, timeout=900) -> subprocess.CompletedProcess:
    """``prefect ARGS`` against the server of ``env``, from the repository root."""
    return subprocess.run([str(Path(sys.executable).parent / "prefect"), *args], env={**env, "COLUMNS": "250"},
                          capture_output=True, text=True, timeout=timeout, cwd=str(REPO))  # fmt: skip
