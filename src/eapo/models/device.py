"""Device and precision choices: where a policy lives and which dtype it computes in (DESIGN.md §5).

Weights stay fp32 on CPU (they are the training master weights); speed comes from bf16 autocast when the
CPU has bf16 matrix units (AMX or AVX512-BF16). Without them a bf16 matmul is emulated and far slower
than fp32 (measured on an AVX2-only EPYC: ~0.001 vs ~0.17 TFLOPS), so autocast is then switched off.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch

from eapo.errors import ConfigError

DTYPE_SETTINGS = ("auto", "float32", "bfloat16")
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> `cuda` when available, else `cpu`; otherwise the named device, checked to exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(
            f"model.device: {name!r} is not a device; expected auto, cpu, cuda or cuda:N"
        ) from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"model.device: {name!r} asked for CUDA, but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"model.device: {name!r} names GPU {device.index}, but only "
                f"{torch.cuda.device_count()} are visible"
            )
    elif device.type != "cpu":
        raise ConfigError(f"model.device: {name!r} is not supported; expected auto, cpu, cuda or cuda:N")
    return device


def move_model(model: torch.nn.Module, device: torch.device) -> None:
    """`model.to(device)`, in place. Typed as a torch module because transformers 5 wraps
    `PreTrainedModel.to` with `functools.wraps(torch.nn.Module.to)`, which type checkers read as unbound."""
    model.to(device)


def resolve_dtype(device: torch.device, setting: str = "auto") -> torch.dtype:
    """Weight dtype: `auto` is bf16 on CUDA (when the GPU supports it) and fp32 on CPU."""
    _check_dtype_setting(setting)
    if setting == "float32":
        return torch.float32
    if setting == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AMX tiles or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def device_has_fast_bf16(device: torch.device | str) -> bool:
    """bf16 matrix units on this device: a bf16-capable CUDA GPU, or a CPU with `cpu_has_fast_bf16()`."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_has_fast_bf16()


def autocast_enabled(device: torch.device | str, dtype_setting: str = "auto") -> bool:
    """Whether `autocast_context(device, dtype_setting)` turns bf16 autocast on."""
    _check_dtype_setting(dtype_setting)
    return dtype_setting != "float32" and device_has_fast_bf16(device)


def resolve_rollout_dtype(
    device: torch.device | str, dtype_setting: str = "auto", rollout_setting: str = "auto"
) -> torch.dtype:
    """The dtype of the weights that sample rollouts (`model.rollout_dtype`).

    - `float32` / `bfloat16`: that dtype (a bf16 copy of fp32 master weights where they differ).
    - `auto`: bf16 where the training precision already uses bf16 (`model.dtype` not `float32`) and the
      device has bf16 matrix units (`device_has_fast_bf16`), else the weights' own dtype. So a run pinned to
      fp32 (`model.dtype: float32`, the tiny default) samples in fp32 on every machine.
    The policy's log-probs for the loss always come from the training-precision forward (π_old included
      when the rollout dtype differs), as verl and TRL do with vLLM rollouts.
    """
    _check_dtype_setting(rollout_setting, "model.rollout_dtype")
    if rollout_setting == "float32":
        return torch.float32
    if rollout_setting == "bfloat16":
        return torch.bfloat16
    weights = resolve_dtype(torch.device(device), dtype_setting)
    if weights == torch.float32 and autocast_enabled(device, dtype_setting):
        return torch.bfloat16
    return weights


def effective_precision(
    device: torch.device | str, dtype_setting: str = "auto", rollout_setting: str = "auto"
) -> dict[str, Any]:
    """What a run computes in on this machine (part of a run's identity; recorded in `precision.json`):
    `weights` (master weights), `rollout` (the sampling weights' dtype; no autocast while sampling),
    `training_forward` (`<weights dtype>` or `bfloat16 autocast`, the scoring and update forwards),
    `autocast`, and for the record `device` and `fast_bf16` (whether the device has bf16 matrix units)."""
    device = torch.device(device)
    weights = resolve_dtype(device, dtype_setting)
    autocast = autocast_enabled(device, dtype_setting)
    return {
        "weights": _DTYPE_NAMES.get(weights, str(weights)),
        "rollout": _DTYPE_NAMES.get(resolve_rollout_dtype(device, dtype_setting, rollout_setting)),
        "training_forward": "bfloat16 autocast" if autocast else _DTYPE_NAMES.get(weights, str(weights)),
        "autocast": autocast,
        "device": device.type,
        "fast_bf16": device_has_fast_bf16(device),
    }


def autocast_context(
    device: torch.device | str, dtype_setting: str = "auto"
) -> contextlib.AbstractContextManager:
    """The context the trainer runs forward passes in.

    - `float32`: no autocast.
    - `auto` / `bfloat16` on CUDA: bf16 autocast (harmless on bf16 weights, speeds up fp32 ones).
    - `auto` / `bfloat16` on CPU: bf16 autocast only when `cpu_has_fast_bf16()`; otherwise no autocast,
      because emulated bf16 would be slower than fp32.
    """
    _check_dtype_setting(dtype_setting)
    device = torch.device(device)
    if dtype_setting == "float32":
        return contextlib.nullcontext()
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _check_dtype_setting(setting: str, field: str = "model.dtype") -> None:
    if setting not in DTYPE_SETTINGS:
        raise ConfigError(
            f"{field}: {setting!r} is not supported; expected one of {', '.join(DTYPE_SETTINGS)}"
        )
