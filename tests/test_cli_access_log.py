"""``meet-coordinator serve`` logs requests without the OIDC codes and states (issue 9.12)."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.postgres import free_port
from tests.test_cli import COMMAND, env_for


def test_served_access_log_redacts_login_queries(tmp_path: Path) -> None:
    env = env_for(tmp_path, LOG_FORMAT="text")  # the JSON lines have no query string at all
    assert subprocess.run([*COMMAND, "migrate"], env=env, capture_output=True).returncode == 0
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [*COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/v1.0/config/?visible=1").close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        for path in ("/api/v1.0/callback/?code=SECRETCODE&state=SECRETSTATE", "/api/v1.0/logout/"):
            try:
                urllib.request.urlopen(f"{base}{path}").close()
            except urllib.error.URLError:
                pass  # redirects to places that do not exist here
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
    assert "GET /api/v1.0/config/?visible=1" in stderr
    assert "GET /api/v1.0/callback/?[redacted]" in stderr
    assert "SECRET" not in stderr
