"""Fixtures for the server tests: the tiny model's engine, an in-process app, a real `zhllama serve` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

API_KEY = "sk-test-zhllama"
MODEL = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(proc: subprocess.Popen, url: str, timeout: float = 90.0) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it dies or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"server exited with {proc.returncode}:\n{out[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    pytest.fail(f"server did not answer {url} within {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def start_cli(args: list[str], health_path: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "zhllama", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait_until_up(proc, f"http://127.0.0.1:{port}{health_path}")
    except BaseException:
        stop(proc)
        raise
    return proc


@pytest.fixture(scope="session")
def engine(tiny_model_dir):
    from zhllama.infer.engine import Engine

    return Engine.load(tiny_model_dir)


@pytest.fixture(scope="module")
def client(engine):
    from fastapi.testclient import TestClient

    from zhllama.serve.config import ApiSettings
    from zhllama.serve.openai import create_app

    app = create_app(engine, ApiSettings(model_name=MODEL, max_request_bytes=50_000, max_prompt_tokens=300,
                                         max_tokens=8))
    with TestClient(app) as c:
        yield c


@pytest.fixture
def cli_process():
    """Start `zhllama ARGS` and wait for a loopback URL: ``start(args, health_path, port) -> base URL``; stopped after the test."""
    procs = []

    def start(args: list[str], health_path: str, port: int) -> str:
        procs.append(start_cli(args, health_path, port))
        return f"http://127.0.0.1:{port}"
    yield start
    for proc in procs:
        stop(proc)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    """A real `zhllama serve` process on a free loopback port, with an API key."""
    port = free_port()
    proc = start_cli(["serve", "--model", str(tiny_model_dir), "--model-name", MODEL, "--port", str(port),
                      "--api-key", API_KEY, "--max-tokens", "8", "--max-request-bytes", "100000",
                      "--log-level", "warning"], "/health", port)
    yield f"http://127.0.0.1:{port}"
    stop(proc)
