"""`civicseal serve --workers 2` for real: two worker processes on PostgreSQL share every limit through the store.

On SQLite the same command is refused: the embedded store serves one worker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from civicseal.clock import utcnow
from civicseal.contact import users
from civicseal.programme.reference import printed
from civicseal.store.home import Home
from tests.contact_world import BIRTH, NOW, build, code

CLI = str(Path(sys.executable).parent / "civicseal")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _workers(pid: int) -> list[int]:
    """Worker processes of the server (multiprocessing's resource tracker is a child too, and not one)."""
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_two_workers_share_limits_and_sessions_through_postgresql(home: Home, backend: str, tmp_path: Path) -> None:
    world = build(home, tmp_path)
    port = _free_port()
    command = [CLI, "serve", "--home", str(home.path), "--port", str(port), "--workers", "2"]
    if backend == "sqlite":
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=os.environ.copy())
        assert done.returncode == 1 and "PostgreSQL" in done.stderr
        return
    users.set_limits(home.engine, "op1", hourly=6, miss_percent=30, now=NOW, actor="t")
    token = users.issue_api_token(home.engine, "op1", now=NOW, actor="t")
    server = subprocess.Popen(command, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200 and len(_workers(server.pid)) >= 2:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        assert len(_workers(server.pid)) == 2
        auth = {"Authorization": f"Bearer {token}"}
        body = {"reference_number": printed(world.references[0]), "birth_date": BIRTH, "call_reference": "W-1"}
        # a new connection each time, so the kernel spreads requests over both workers
        answers = [httpx.post(f"{url}/api/v1/lookup", headers=auth, json=body).status_code for _ in range(8)]
        assert answers == [200] * 6 + [403, 403]  # the sixth look-up is the last, whichever worker counted it
        login = httpx.get(f"{url}/login")
        csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
        form = {"csrf_token": csrf, "username": "sup1", "password": world.supervisor.password,
                "totp": code(world.supervisor, utcnow())}  # fmt: skip
        signed = httpx.post(f"{url}/login", data=form, cookies=login.cookies)
        assert signed.status_code == 303
        pages = [httpx.get(f"{url}/supervisor", cookies=signed.cookies) for _ in range(6)]
        assert all(p.status_code == 200 and "op1" in p.text for p in pages)  # one session, any worker
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
