"""Suite-wide settings: asyncio debug mode on for every test loop, and the shared wire captures."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Read when each event loop is created, so setting it here turns debug mode on for every test.
os.environ["PYTHONASYNCIODEBUG"] = "1"

ROOT = Path(__file__).resolve().parent.parent
SDK_REQUESTS = ROOT.parent / "shared" / "wire" / "official-sdk-requests.json"


@pytest.fixture(scope="session")
def sdk_requests() -> dict[str, dict[str, Any]]:
    """The official SDK's captured requests, by SDK method name."""
    captured = json.loads(SDK_REQUESTS.read_text())
    return {entry["sdkMethod"]: entry for entry in captured["requests"]}
