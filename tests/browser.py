"""Headless Chromium for the tests of the report pages, driven over the DevTools protocol
on a pipe (``--remote-debugging-pipe``: JSON messages ended by a NUL byte on file
descriptors 3 and 4), so no driver binary and no Python package beyond the standard
library is needed.

What a page does is recorded from the protocol's events: console messages, uncaught
exceptions, the browser's own log entries, and every request the page makes (with the
network emulated offline, and, where ``unshare -n`` works, the browser in a network
namespace of its own that has no network at all). ``png_colours`` counts the distinct
colours of a screenshot (a small PNG decoder: no imaging library needed).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

#: Names Debian, Ubuntu and Google give the browser, in the order they are tried.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: The flags of every run: headless, no sandbox (containers), nothing fetched by the
#: browser itself (updates, sync, first-run pages), audio muted.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--remote-debugging-pipe",
)
SKIP_REASON = (
    "Chromium is not installed: bash install.sh installs it (Debian's chromium package), as CI does"
)


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _no_network_prefix() -> list[str]:
    """``unshare -n`` (or ``-rn`` as a user) where it works: a network namespace with only
    a loopback device that is down, so nothing can be fetched whatever the page tries."""
    if shutil.which("unshare") is None:
        return []
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=10).returncode
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok == 0:
            return prefix
    return []


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with a fresh profile, one page at a time."""

    def __init__(self, width: int = 1280, height: int = 900, timeout: float = 30.0) -> None:
        executable = find_chromium()
        if executable is None:
            raise BrowserError(SKIP_REASON)
        self.timeout = timeout
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="w2v2-chromium-")
        self.isolated = _no_network_prefix()
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def descriptors() -> None:  # the protocol's pipe is fds 3 (in) and 4 (out)
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.process = subprocess.Popen(
            [*self.isolated, executable, *FLAGS, f"--user-data-dir={self.profile}"],
            pass_fds=(3, 4),
            preexec_fn=descriptors,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        self.target: str | None = None

    # ------------------------------------------------------------------ the protocol

    def _read(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
        if not ready:
            raise BrowserError("Chromium did not answer in time")
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            raise BrowserError(f"Chromium exited (status {self.process.poll()})")
        self._buffer += chunk

    def call(self, method: str, params: dict | None = None, *, page: bool = True) -> dict:
        """Send one command (to the page's session unless ``page`` is False) and return
        its result; events that arrive meanwhile are kept in ``events``."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if page and self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise BrowserError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                if "method" in reply and reply.get("sessionId") in (None, self.session):
                    self.events.append(reply)
            self._read(deadline)

    def pump(self, seconds: float) -> None:
        """Let events come in for a while."""
        self.evaluate("0")
        time.sleep(seconds)
        self.evaluate("0")

    # ------------------------------------------------------------------ a page

    def open(self, url: str) -> None:
        """A new tab (the last one closed), recorded from its first request, offline,
        then ``url`` loaded."""
        if self.target is not None:
            self.call("Target.closeTarget", {"targetId": self.target}, page=False)
            self.session = self.target = None
        target = self.call("Target.createTarget", {"url": "about:blank"}, page=False)
        self.target = target["targetId"]
        attached = self.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, page=False
        )
        self.session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
        )
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (a user gesture, as for playing audio) on the middle of the
        first element ``selector`` finds, scrolled into view first."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        x, y = box
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
            )

    def screenshot(self, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        return base64.b64decode(self.call("Page.captureScreenshot", params)["data"])

    # ------------------------------------------------------------------ what happened

    def console_errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and the browser's own error
        log entries (a failed resource load, a blocked request) since the page opened."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "warning"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Runtime.exceptionThrown":
                found.append(str(p["exceptionDetails"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
                found.append(f"{p['entry'].get('url', '')}: {p['entry']['text']}")
        return found

    def requests(self) -> list[str]:
        """The URL of every request the page made."""
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.session = None
                self.call("Browser.close", page=False)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- PNG


def png_pixels(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG (what Chromium's screenshots are) as an array of shape
    (height, width, channels)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = int.from_bytes(body[:4], "big"), int.from_bytes(body[4:8], "big")
            depth, colour, interlace = body[8], body[9], body[12]
            if depth != 8 or colour not in (2, 6) or interlace:
                raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour})")
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.uint8)
    prior = np.zeros(width * channels, np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + prior) & 255
        elif kind == 1:  # Sub: a running sum per channel
            row = np.cumsum(line.reshape(width, channels), axis=0).reshape(-1) & 255
        else:
            row = _unfilter_slow(int(kind), line, prior, channels)
        out[y] = row
        prior = row.astype(np.int32)
    return out.reshape(height, width, channels)


def _unfilter_slow(kind: int, line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    cur = [0] * len(line)
    up = prior.tolist()
    filt = line.tolist()
    for i in range(len(filt)):
        left = cur[i - bpp] if i >= bpp else 0
        if kind == 3:
            cur[i] = (filt[i] + (left + up[i]) // 2) & 255
        elif kind == 4:
            upleft = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - upleft
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - upleft)
            pred = left if pa <= pb and pa <= pc else (up[i] if pb <= pc else upleft)
            cur[i] = (filt[i] + pred) & 255
        else:
            raise ValueError(f"unknown PNG filter {kind}")
    return np.array(cur, np.int32)


def png_colours(data: bytes) -> int:
    """How many distinct colours a PNG has."""
    pixels = png_pixels(data)
    flat = pixels.reshape(-1, pixels.shape[2]).astype(np.uint32)
    packed = flat[:, 0] << 16 | flat[:, 1] << 8 | flat[:, 2]
    if pixels.shape[2] == 4:
        packed = packed.astype(np.uint64) << np.uint64(8) | flat[:, 3].astype(np.uint64)
    return len(np.unique(packed))


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()
