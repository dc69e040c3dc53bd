"""A page we write, loaded in a real headless Chromium (Debian's package) over the DevTools protocol.

What a person would see go wrong: console errors and uncaught exceptions, images that do not render; and a
screenshot to look at. ``make install`` installs Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vlmr1.ports import free_port

IMAGES = "JSON.stringify([...document.images].map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})))"


@dataclass
class Loaded:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # per <img>: ok (rendered), w (natural width)
    values: dict = field(default_factory=dict)  # what each extra expression evaluated to


class _Session:
    def __init__(self, ws):
        self.ws, self.next_id, self.events = ws, 0, []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))))


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.exceptionThrown":
            out.append(p["exceptionDetails"].get("text", "") + " " + json.dumps(p["exceptionDetails"])[:300])
        elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
        elif e.get("method") == "Log.entryAdded" and p["entry"]["level"] == "error":
            out.append("log: " + p["entry"]["text"])
    return out


def load(page: Path, screenshot: Path | None = None, evaluate: dict[str, str] | None = None) -> Loaded:
    """Open ``page`` (a file) in headless Chromium, wait for its load event, collect what went wrong."""
    from websockets.sync.client import connect

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    assert binary, "Chromium is not installed: `make install` installs Debian's package"
    port = free_port()
    # Chromium's helpers may still write to the profile after the browser is killed: the whole group is killed,
    # and what they leave does not fail the test (it is a temporary folder)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "--window-size=1400,1000",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # fmt: skip
        try:
            targets = _targets(port)
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            with connect(ws_url, max_size=None, open_timeout=30) as ws:
                s = _Session(ws)
                for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
                    s.call(domain)
                s.call("Page.navigate", url=page.resolve().as_uri())
                s.wait_for("Page.loadEventFired")
                images = json.loads(s.call("Runtime.evaluate", expression=IMAGES)["result"]["value"])
                values = {k: s.call("Runtime.evaluate", expression=v, returnByValue=True)["result"].get("value")
                          for k, v in (evaluate or {}).items()}  # fmt: skip
                if screenshot:
                    shot = s.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
                    screenshot.write_bytes(base64.b64decode(shot["data"]))
                return Loaded(_errors(s.events), images, values)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _targets(port: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                found = json.loads(r.read())
            if any(t["type"] == "page" for t in found):
                return found
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Chromium's DevTools did not answer on port {port}")
        time.sleep(0.2)
