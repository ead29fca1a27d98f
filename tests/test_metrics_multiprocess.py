"""Issue 11: processes sharing ``PROMETHEUS_MULTIPROC_DIR`` are answered by one aggregate
``/metrics`` from ``serve``; a dead worker's live gauges drop out; ``serve`` logs JSON lines."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from coordinator.telemetry import mark_process_dead
from tests.support.postgres import free_port
from tests.test_cli import COMMAND, env_for

OPS_TOKEN = "ops-token-" + "m" * 30


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text, _ = get(f"{base}/metrics", {"Authorization": f"Bearer {OPS_TOKEN}"})
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_until_serving(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a loaded machine takes seconds to import
    while True:
        try:
            urllib.request.urlopen(f"{base}/__lbheartbeat__", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, ConnectionError):
            assert process.poll() is None, "serve exited"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)


# A second worker writing to the same directory (the real Metrics, without a whole server).
WORKER = """
import sys
from coordinator.telemetry import Metrics
metrics = Metrics(multiprocess_directory=sys.argv[1])
for _ in range(2):
    metrics.observe_request("/api/v1.0/config/", "GET", 200, 0.004)
metrics.db_pool_size.set(5)
print("ready", flush=True)
sys.stdin.read()  # alive until the test closes stdin
"""


@pytest.fixture
def served(
    tmp_path: Path, sqlite_template: Path
) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = env_for(
        tmp_path,
        PROMETHEUS_MULTIPROC_DIR=str(directory),
        OPS_TOKEN=OPS_TOKEN,
        LOG_FORMAT="json",
        LOG_LEVEL="info",
    )
    shutil.copy(sqlite_template, tmp_path / "meet.db")  # migrated once per session
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base, process)
        yield directory, base, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)


def test_two_processes_aggregate_into_one_scrape(
    served: tuple[Path, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    directory, base, server = served
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(directory)],
        env=env_for(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for i in range(3):
        status, _, headers = get(f"{base}/api/v1.0/config/", {"X-Request-ID": f"mp-{i}"})
        assert status == 200 and headers["X-Request-ID"] == f"mp-{i}"
    config = (
        "meet_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "/api/v1.0/config/"), ("status", "200")),
    )
    pool = ("meet_db_pool_size", ())
    before = scrape(base)
    assert before[config] == 3 + 2  # the server's requests and the other worker's
    assert before[pool] >= 5 + 1  # livesum: the server's pool and the worker's 5
    assert get(f"{base}/metrics")[0] == 401
    assert get(f"{base}/metrics", {"Authorization": "Bearer nope"})[0] == 401

    worker.communicate(input="", timeout=20)
    mark_process_dead(worker.pid, str(directory))
    after = scrape(base)
    assert after[config] == 5  # a dead worker's counters still count
    assert after[pool] == before[pool] - 5  # its live gauges no longer do

    server.send_signal(signal.SIGINT)
    _, stderr = server.communicate(timeout=30)
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(lines) == len([line for line in stderr.splitlines() if line.strip()])
    requests = [line for line in lines if line["message"] == "request"]
    tagged = [line for line in requests if str(line.get("request_id")).startswith("mp-")]
    assert [line["request_id"] for line in tagged] == ["mp-0", "mp-1", "mp-2"]
    assert all(line["route"] == "/api/v1.0/config/" and line["status"] == 200 for line in tagged)
