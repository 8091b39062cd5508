"""Headless Chromium (Debian's package) driven over the DevTools protocol, with the `websockets` client.

    with Browser() as browser:
        page = browser.page()
        page.goto("http://127.0.0.1:8000/")
        assert page.evaluate("document.title") == "..."
        page.screenshot("chat.png")

No driver download: the tests start /usr/bin/chromium themselves with a
throwaway profile and the flags this closed network needs.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from channels_core.test.processes import ChildProcess, ProcessError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


class BrowserError(RuntimeError):
    pass


class Page:
    def __init__(self, ws_url: str) -> None:
        self.ws = connect(ws_url, max_size=None, open_timeout=10, ping_interval=None, legacy=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []
        self.call("Page.enable")
        self.call("Runtime.enable")

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict:
        call_id = next(self.ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def goto(self, url: str, timeout: float = 30.0) -> None:
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load in {timeout}s")
            try:
                self.events.append(json.loads(self.ws.recv(timeout=1)))
            except TimeoutError:
                pass

    def evaluate(self, expression: str, timeout: float = 30.0) -> Any:
        """The value of a JavaScript expression (a promise is awaited); a thrown error raises BrowserError."""
        result = self.call(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise BrowserError(details.get("exception", {}).get("description") or details.get("text"))
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still falsy after {timeout}s: {expression}")
            time.sleep(0.05)

    def console_errors(self) -> list[str]:
        out = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                out.append(event["params"]["exceptionDetails"].get("text", ""))
        return out

    def screenshot(self, path: str | Path) -> Path:
        # A background tab renders no frame: the capture would wait until the call's timeout.
        self.call("Page.bringToFront")
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()


class Browser:
    def __init__(self, width: int = 1100, height: int = 800) -> None:
        if CHROMIUM is None:
            raise BrowserError("chromium is not installed (apt-get install chromium); .ci/run installs it")
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.pages: list[Page] = []
        # Its own process group: stopping it stops the renderer, GPU and zygote processes it forks too.
        self.process = ChildProcess(
            [CHROMIUM, *FLAGS, f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "about:blank"],
            label="chromium",
            own_group=True,
        )
        port_file = Path(self.profile) / "DevToolsActivePort"
        try:
            self.process.wait_until(
                lambda: port_file.exists() and len(port_file.read_text().splitlines()) >= 2,
                "start its DevTools endpoint",
                timeout=30,
            )
        except ProcessError as exc:
            self.close()
            raise BrowserError(str(exc)) from None
        self.port = int(port_file.read_text().splitlines()[0])

    def page(self) -> Page:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.loads(response.read())
        page = Page(target["webSocketDebuggerUrl"])
        self.pages.append(page)
        return page

    def close(self) -> None:
        for page in getattr(self, "pages", []):
            try:
                page.close()
            except Exception:
                pass
        self.process.stop(timeout=10)
        self.process.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
