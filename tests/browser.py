"""A real headless browser for the pages sagemake writes: Debian's chromium, driven over the DevTools protocol on a
pipe (--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and 4), so no driver package is needed.

`open_page(path, screenshot)` loads a file as a person opens it, with every host name unresolvable (a page that
fetches anything from the internet fails to), and answers what a person would see: the page's visible text, the
errors its console showed (uncaught exceptions, console.error, failed loads), and a screenshot of the whole page.
`tests/run.sh` installs chromium (as root, with apt) when it is missing; CHROMIUM names another binary.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")
WAIT_SECONDS = 120  # for any one answer: a loaded machine is slow, never a reason to fail


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, NAMES)), None)
    if not found:
        raise AssertionError("no headless browser: `make test` installs Debian's chromium as root "
                             "(apt-get install chromium), or set CHROMIUM to one")
    return found


@dataclass
class Page:
    text: str  # document.body.innerText: what shows
    errors: list[str]
    screenshot: Path


class _DevTools:
    def __init__(self, args: list[str], log: Path):
        self.log = log
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()
        # fds 3 and 4 in the browser, whatever numbers they have here
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', *args],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL, stderr=log.open("wb"))
        os.close(to_browser)
        os.close(from_browser)
        self.events: queue.Queue = queue.Queue()
        self.answers: dict[int, queue.Queue] = {}
        self.next_id = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buffer = b""
        while chunk := os.read(self._read, 1 << 16):
            buffer += chunk
            while b"\0" in buffer:
                message, buffer = buffer.split(b"\0", 1)
                decoded = json.loads(message)
                if "id" in decoded:
                    self.answers[decoded["id"]].put(decoded)
                else:
                    self.events.put(decoded)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        with self.lock:
            self.next_id += 1
            number = self.next_id
            self.answers[number] = queue.Queue()
        message = {"id": number, "method": method, "params": params, **({"sessionId": session} if session else {})}
        try:
            os.write(self._write, json.dumps(message).encode() + b"\0")
            answer = self.answers[number].get(timeout=WAIT_SECONDS)
        except (OSError, queue.Empty):
            said = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise AssertionError(f"{method}: the browser did not answer; it said: {' | '.join(said)}") from None
        if "error" in answer:
            raise AssertionError(f"{method}: {answer['error']}")
        return answer["result"]

    def wait_for(self, method: str) -> list[dict]:
        """Events up to and including the first `method`: (those before it, for the errors)."""
        seen = []
        while True:
            event = self.events.get(timeout=WAIT_SECONDS)
            seen.append(event)
            if event["method"] == method:
                return seen

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (AssertionError, OSError, queue.Empty):
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)


def _errors(events: list[dict]) -> list[str]:
    found = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
    return found


def open_page(path: Path, screenshot: Path, width: int = 1280) -> Page:
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    browser = _DevTools([chromium(), "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                         "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
                         "--host-resolver-rules=MAP * ~NOTFOUND"], Path(profile) / "browser.log")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session)
        browser.send("Emulation.setDeviceMetricsOverride", session, width=width, height=900, deviceScaleFactor=1,
                     mobile=False)
        browser.send("Page.navigate", session, url=path.resolve().as_uri())
        events = browser.wait_for("Page.loadEventFired")
        # Anything the page's scripts do after the load (a chart drawn late) comes before this answer.
        text = browser.send("Runtime.evaluate", session, expression="document.body.innerText",
                            awaitPromise=True)["result"]["value"]
        size = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        while not browser.events.empty():
            events.append(browser.events.get())
        return Page(text, _errors(events), screenshot)
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
