"""CLI test helpers: an emulator in its own process, and the CLI run as a subprocess."""

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

CLI = [sys.executable, "-m", "wixinv_async"]


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
        [*CLI, "emulator", "--port", "0", *args],
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


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``wixinv-async ARGS`` to completion."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("WIX_")}
    full_env.update(env or {})
    return subprocess.run(  # noqa: S603
        [*CLI, *args], capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


def write_csv(path: Path, rows: list[tuple[str, str, int]]) -> None:
    lines = ["product_id,variant_id,delta"] + [f"{p},{v},{d}" for p, v, d in rows]
    path.write_text("\n".join(lines) + "\n")
