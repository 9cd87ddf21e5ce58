"""A pytest plugin for `gpu_check.sh`: run the tests with torch's default device set to EAPO_DEFAULT_DEVICE.

    EAPO_DEFAULT_DEVICE=cuda PYTHONPATH=benchmarks python -m pytest -p gpu_default_device tests/core

Tensors and models the tests create without a device then live on that device, so the core math and the
rollout path run on the GPU. Not used by CI.
"""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    device = os.environ.get("EAPO_DEFAULT_DEVICE")
    if device:
        import torch

        torch.set_default_device(device)
