"""Suite-wide settings: asyncio debug mode on for every test loop, the shared wire captures, and
``wixinv-async emulator`` in a child process (the CLI tests and the emulator command's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Read when each event loop is created, so setting it here turns debug mode on for every test.
os.environ["PYTHONASYNCIODEBUG"] = "1"

ROOT = Path(__file__).resolve().parent.parent
# Vendored from the shared wire captures (tests/wire/README.md names the source), so a clone alone passes.
WIRE = Path(__file__).resolve().parent / "wire"
SDK_REQUESTS = WIRE / "official-sdk-requests.json"


@pytest.fixture(scope="session")
def sdk_requests() -> dict[str, dict[str, Any]]:
    """The official SDK's captured requests, by SDK method name."""
    captured = json.loads(SDK_REQUESTS.read_text())
    return {entry["sdkMethod"]: entry for entry in captured["requests"]}


@dataclass
class EmulatorProcess:
    """``wixinv-async emulator`` running in a child process."""

    process: subprocess.Popen[str]
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.env["WIX_BASE_URL"]

    def admin(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.url}/_emulator/{path}"
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.loads(response.read() or b"null")

    def quantities(self) -> dict[tuple[str, str], int | None]:
        state = self.admin("state")
        return {
            (item["productId"], variant["variantId"]): variant.get("quantity")
            for item in state["inventoryItems"]
            for variant in item["variants"]
        }

    def tracked_keys(self) -> list[tuple[str, str]]:
        state = self.admin("state")
        return [
            (item["productId"], variant["variantId"])
            for item in state["inventoryItems"]
            if item["trackQuantity"]
            for variant in item["variants"]
        ]


def start_emulator(*args: str) -> EmulatorProcess:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "wixinv_async", "emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    env: dict[str, str] = {}
    for line in process.stdout:
        if line.startswith("export WIX_"):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            env[name] = value
            if name == "WIX_SITE_ID":
                return EmulatorProcess(process, env)
    process.kill()
    raise RuntimeError(
        f"the emulator did not start: {process.stderr.read() if process.stderr else ''}"
    )


@pytest.fixture
def emulator_process() -> Iterator[Any]:
    """A factory of emulator processes; each is stopped after the test."""
    started: list[EmulatorProcess] = []

    def start(*args: str) -> EmulatorProcess:
        emulator = start_emulator(*args)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.process.terminate()
        try:
            emulator.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.process.kill()
            emulator.process.wait()
        for stream in (emulator.process.stdout, emulator.process.stderr):
            if stream is not None:
                stream.close()
