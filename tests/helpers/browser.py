"""A small headless-Chromium driver over the Chrome DevTools Protocol, for the browser tests.

Why not playwright: it wants its own pinned browser build (``playwright install``), which the
closed CI network cannot fetch; Debian's ``chromium`` speaks CDP directly, and a websocket
client (``websocket-client``) plus ~150 lines here is all a test needs: open a URL, wait for a
condition, evaluate JavaScript, collect console errors and uncaught exceptions, screenshot.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags that keep Chromium from calling home (it hangs on a closed network without them).
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
SCREENSHOT_ENV = "LSTM_TUNE_SCREENSHOT_DIR"
START_TIMEOUT_S = 30.0  # a cold Chromium start on a busy 2-core machine takes a few seconds


def find_browser() -> str | None:
    """Return the path of a Chromium-family browser ($LSTM_TUNE_CHROMIUM first), or None."""
    explicit = os.environ.get("LSTM_TUNE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to $LSTM_TUNE_SCREENSHOT_DIR, if set, for a human to look at."""
    target = os.environ.get(SCREENSHOT_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


class BrowserError(RuntimeError):
    """The browser did not start, answer, or reach the expected state in time."""


class Page:
    """One tab, driven through its CDP websocket; records JS errors as they arrive."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.errors: list[str] = []
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def close(self) -> None:
        """Close the websocket (the browser process is closed by :class:`Browser`)."""
        self._ws.close()

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result, recording events seen meanwhile."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method} failed: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self._record(msg)

    def _record(self, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        params = msg.get("params", {})
        if method is None:
            return
        self.events.append(msg)
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            desc = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"exception: {desc}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append("console.error: " + " ".join(args))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} ({entry.get('url', '')})")

    def navigate(self, url: str, *, timeout: float = 30.0) -> None:
        """Open ``url`` and wait until the document has loaded."""
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def evaluate(self, expression: str) -> Any:
        """Evaluate a JavaScript expression in the page and return its JSON value."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, *, timeout: float = 30.0, poll: float = 0.25) -> Any:
        """Poll a JavaScript expression until truthy; return its value, raise on timeout."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except BrowserError:
                last = None  # the page may be mid-navigation
            if last:
                return last
            time.sleep(poll)
        raise BrowserError(
            f"timed out after {timeout}s waiting for {expression!r} (last={last!r})"
        )

    def set_viewport(self, width: int, height: int) -> None:
        """Resize the viewport (a tall one shows a scrolling app page in one screenshot)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or the whole page) to ``path``."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        data = self.send("Page.captureScreenshot", **params)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out


class Browser:
    """A headless Chromium with a throwaway profile; use as a context manager."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._profile = tempfile.mkdtemp(prefix="lstm-tune-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0

    def __enter__(self) -> Browser:
        self._proc = subprocess.Popen(
            [
                self.executable,
                *HEADLESS_FLAGS,
                f"--user-data-dir={self._profile}",
                "--remote-debugging-port=0",  # Chromium picks a free port, writes it below
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"{self.executable} exited with code {self._proc.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                self._port = int(port_file.read_text().splitlines()[0])
                break
            time.sleep(0.1)
        else:
            self.__exit__(None, None, None)
            raise BrowserError(f"{self.executable} did not open a DevTools port in time")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    def page(self) -> Page:
        """Return a fresh tab."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self._port}/json/new?about:blank", method="PUT"
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            target = json.load(resp)
        return Page(target["webSocketDebuggerUrl"])
