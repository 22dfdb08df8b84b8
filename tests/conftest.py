"""Odoo-free tests: they import ``crm_whatsapp_bridge.tools`` without running the addon's
``__init__`` (which needs Odoo), by registering a bare package object for it."""

import json
import os
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ADDON = REPO / "crm_whatsapp_bridge"
# The API samples of shared/spec/samples, kept with the addon so its tests run from any checkout.
SAMPLES = Path(os.environ.get("CWB_SAMPLES_DIR", ADDON / "tests" / "samples"))

if "crm_whatsapp_bridge" not in sys.modules:
    package = types.ModuleType("crm_whatsapp_bridge")
    package.__path__ = [str(ADDON)]
    sys.modules["crm_whatsapp_bridge"] = package


def sample_names(prefix=""):
    if not SAMPLES.is_dir():
        return []
    return sorted(path.stem for path in SAMPLES.glob(f"{prefix}*.json"))


@pytest.fixture
def load_sample():
    if not SAMPLES.is_dir():
        pytest.skip(f"sample payloads not found in {SAMPLES}")

    def load(name):
        return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))

    return load
