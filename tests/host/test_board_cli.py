"""``make board``'s program (board/run.py) as a user runs it in a terminal: the banner with the
web address and login, the serial console, key ``d`` typed in the terminal reaching the
firmware's console, ``n`` pressing the NEXT button, and the closing summary line of ``make sim``.
Skipped without ``CIRCUITPYTHON`` (see test_board_system.py).
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

from _support import REPO_ROOT
from test_board_system import VM, build_release, http_get, pytestmark  # noqa: F401


def test_make_board_in_a_terminal(tmp_path):
    from servers import free_port

    port = free_port()
    release = build_release(tmp_path / "dist")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "board" / "run.py"),
            "--vm",
            VM,
            "--duration",
            "8",
            "--speed",
            "5",
            "--data-dir",
            str(tmp_path / "data"),
            "--http-port",
            str(port),
            "--release",
            str(release),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=REPO_ROOT,
    )
    os.close(slave)
    out = b""
    typed = pressed = False
    page = None
    end = time.monotonic() + 60
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break  # the program ended
                if not chunk:
                    break
                out += chunk
            if not typed and b"works (found after" in out:
                os.write(master, b"d")  # the serial console's status dump
                typed = True
            if typed and not pressed and b"  decoded " in out:
                os.write(master, b"n")  # NEXT: the display's next screen
                pressed = True
                m = re.search(rb"password (\S+)", out)
                page = http_get(port, m.group(1).decode(), "/api/status")[0]
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = out.decode("utf-8", "replace")
    assert "web: http://127.0.0.1:%d/  user admin  password " % port in text
    assert page == 200
    assert typed and pressed, text[-2000:]
    assert text.count("  decoded ") >= 2  # the 'd' typed, and the closing status
    last = text.strip().splitlines()[-1]
    m = re.match(
        r"sent (\d+) decoded (\d+) logged (\d+) uart_overflow 0 longest_pass_ms \d+ ", last
    )
    assert m, last
    sent, decoded, logged = (int(x) for x in m.groups())
    assert decoded == logged > 0 and decoded >= sent - 1
