#!/usr/bin/env python3
"""Upload the firmware to a board over CircuitPython's web workflow (``make deploy HOST=name``).

Uses the web workflow's file REST API (CircuitPython 8+, documented in CircuitPython's
``docs/workflows.md``): ``PUT /fs/<dir>/`` creates a directory (201 created, 204 exists),
``PUT /fs/<file>`` writes a file, ``GET /fs/<dir>/`` with ``Accept: application/json`` lists a
directory, all with HTTP Basic auth (empty user name, the password is the board's
``CIRCUITPY_WEB_API_PASSWORD``, read here from the environment variable of the same name).
``/cp/version.json`` needs no auth and names the board.

The file set is the one ``tools/deploy.py`` copies to a USB drive (code.py last): by default
the release zip from ``make release`` for the CircuitPython major version the board reports,
``--source`` for the repository's ``.py`` files. Files whose size and time stamp already match
are skipped (``--force`` uploads all), so a second run uploads nothing. The board's
``settings.toml`` is never overwritten (the web workflow only runs when it exists). Firmware
``.py`` files that would shadow the release's ``.mpy`` files are not deleted over the web
workflow: the summary names them (delete them, or use the USB drive once).

There is no restart endpoint: ``/cp/`` accepts GET only. A write through the web workflow
triggers CircuitPython's auto-reload (when ``supervisor.runtime.autoreload`` is on, the default),
so the new code starts by itself; otherwise press reset. While the CIRCUITPY drive is mounted
over USB the file system is read-only to the web workflow (HTTP 409): eject it first.
Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import (  # noqa: E402
    DIST,
    REPO_ROOT,
    SETTINGS,
    DeployError,
    Payload,
    device_dirs,
    release_zip,
)

PASSWORD_ENV = "CIRCUITPY_WEB_API_PASSWORD"
FAT_TIME_SLACK_NS = 2_000_000_000  # FAT stores modification times in 2 s steps

_STATUS_HINTS = {
    401: "wrong password (check CIRCUITPY_WEB_API_PASSWORD)",
    403: "the board has no CIRCUITPY_WEB_API_PASSWORD in its settings.toml",
    404: "parent directory missing",
    409: "the drive is mounted over USB, which makes it read-only to the web workflow: eject it",
    413: "file too large for the board",
    417: "file too large for the board",
}


class Board:
    """Minimal client for the web workflow file API of one board."""

    def __init__(self, base_url: str, password: str, timeout: float = 15.0) -> None:
        self.base = base_url.rstrip("/")
        token = base64.b64encode((":" + password).encode()).decode("ascii")
        self._auth = "Basic " + token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request; return (status, headers, body). HTTP errors raise DeployError."""
        url = self.base + urllib.parse.quote(path)
        req = urllib.request.Request(url, data=data, method=method)
        if auth:
            req.add_header("Authorization", self._auth)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            hint = _STATUS_HINTS.get(exc.code, exc.reason)
            raise DeployError(f"{method} {path}: HTTP {exc.code} - {hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeployError(f"{method} {path}: cannot reach {self.base}: {reason}") from None

    def version(self) -> dict:
        _, _, body = self.request("GET", "/cp/version.json", auth=False)
        return json.loads(body)

    def writable(self) -> bool:
        """True unless USB holds the drive (the allowed methods then lack PUT)."""
        _, headers, _ = self.request("OPTIONS", "/fs/")
        allowed = {k.lower(): v for k, v in headers.items()}.get("access-control-allow-methods")
        return allowed is None or "PUT" in allowed.upper()

    def listdir(self, path: str) -> dict[str, dict] | None:
        """Entries of directory ``path`` (ending in '/') by name, or None if it is missing."""
        try:
            _, _, body = self.request("GET", "/fs" + path, headers={"Accept": "application/json"})
        except DeployError as exc:
            if "HTTP 404" in str(exc):
                return None
            raise
        data = json.loads(body)
        entries = data.get("files", []) if isinstance(data, dict) else data
        return {e["name"]: e for e in entries}

    def mkdir(self, path: str) -> bool:
        """Create directory ``path``; return True if it was created, False if it existed."""
        status, _, _ = self.request("PUT", "/fs/" + path.strip("/") + "/", data=b"")
        return status == 201

    def put(self, path: str, data: bytes, mtime_ms: int | None = None) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if mtime_ms is not None:
            headers["X-Timestamp"] = str(mtime_ms)
        self.request("PUT", "/fs/" + path.lstrip("/"), data=data, headers=headers)


def _split_host(host: str) -> str:
    if "://" in host:
        return host.rstrip("/")
    return "http://" + host


def _unchanged(entry: dict | None, size: int, mtime_ns: int) -> bool:
    if not entry or entry.get("directory"):
        return False
    if entry.get("file_size") != size:
        return False
    local_ns = (mtime_ns // 1_000_000) * 1_000_000
    return abs(int(entry.get("modified_ns", 0)) - local_ns) <= FAT_TIME_SLACK_NS


def deploy(
    board: Board,
    root: Path = REPO_ROOT,
    force: bool = False,
    dry_run: bool = False,
    payload: Payload | None = None,
):
    """Upload the firmware; return (written, skipped) file counts."""
    if not board.writable():
        raise DeployError(_STATUS_HINTS[409])
    if payload is None:
        payload = Payload.from_repo(root)
    files = payload.files
    listings: dict[str, dict[str, dict] | None] = {"": board.listdir("/")}
    for d in device_dirs(files):
        parent, _, name = d.rpartition("/")
        known = (listings.get(parent) or {}).get(name)
        if dry_run or (known and known.get("directory")):
            listings[d] = board.listdir("/" + d + "/")  # exists: no PUT, nothing written
            continue
        if board.mkdir(d):
            print(f"  created {d}/")
            listings[d] = {}
        else:
            listings[d] = board.listdir("/" + d + "/")

    written = skipped = 0
    for rel in files:
        data, mtime_ns = payload.data[rel], payload.mtime_ns[rel]
        parent, _, name = rel.rpartition("/")
        entry = (listings.get(parent) or {}).get(name)
        if not force and _unchanged(entry, len(data), mtime_ns):
            skipped += 1
            continue
        print(f"  {rel}")
        written += 1
        if not dry_run:
            board.put(rel, data, mtime_ns // 1_000_000)

    if payload.release:
        shadows = []
        for rel in files:
            if rel.endswith(".mpy") and not rel.startswith("lib/"):
                parent, _, name = rel.rpartition("/")
                if name[:-4] + ".py" in (listings.get(parent) or {}):
                    shadows.append(rel[:-4] + ".py")
        if shadows:
            print(
                f"webdeploy: warning: {len(shadows)} old .py file(s) such as {shadows[0]} hide the"
                " release's .mpy files: delete them (or deploy once over USB, which does)"
            )
    if SETTINGS in (listings[""] or {}):
        print(f"webdeploy: keeping the board's {SETTINGS}")
    elif payload.settings_example is not None:
        print(f"webdeploy: the board has no {SETTINGS}: uploading the example as it")
        if not dry_run:
            board.put(SETTINGS, payload.settings_example)
    return written, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Upload code.py, smartmeter/ and drivers/ over the CircuitPython web workflow."
    )
    parser.add_argument("host", help="board host name or IP, optionally :port (or a base URL)")
    parser.add_argument("--force", action="store_true", help="upload unchanged files too")
    parser.add_argument("--dry-run", action="store_true", help="only list what would be uploaded")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    parser.add_argument("--release", type=Path, help="release zip (default: the one in dist/)")
    parser.add_argument("--dist", type=Path, default=DIST, help="folder of the release zips")
    parser.add_argument("--source", action="store_true", help="upload the repository's .py files")
    parser.add_argument("--no-libs", action="store_true", help="leave lib/ alone")
    args = parser.parse_args(argv)

    password = os.environ.get(PASSWORD_ENV, "")
    if not password:
        print(f"webdeploy: set {PASSWORD_ENV} to the board's web workflow password")
        return 2
    base = _split_host(args.host)
    try:
        board = Board(base, password, args.timeout)
        info = board.version()
        if urllib.parse.urlsplit(base).hostname == "circuitpython.local" and info.get("ip"):
            # circuitpython.local redirects to cpy-XXXXXX.local; PUT does not follow redirects.
            board = Board(f"http://{info['ip']}:{info.get('port', 80)}", password, args.timeout)
        print(
            f"webdeploy: {info.get('board_name', '?')} running CircuitPython "
            f"{info.get('version', '?')} at {board.base}"
        )
        if args.source:
            payload = Payload.from_repo()
        else:
            payload = Payload.from_zip(args.release or release_zip(info.get("version"), args.dist))
            print(f"webdeploy: installing {payload.label}")
        if args.no_libs:
            payload = payload.without_libs()
        written, skipped = deploy(board, force=args.force, dry_run=args.dry_run, payload=payload)
    except DeployError as exc:
        print(f"webdeploy: {exc}")
        return 1
    print(f"webdeploy: {written} file(s) uploaded, {skipped} unchanged")
    if written and not args.dry_run:
        print(
            "webdeploy: the board auto-reloads after web workflow writes (if auto-reload is on);"
            " otherwise press its reset button. The web API has no restart endpoint."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
