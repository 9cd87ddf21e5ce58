"""Device and precision choices: where a policy lives and which dtype it computes in (DESIGN.md §5).

Weights stay fp32 on CPU (they are the training master weights); speed comes from bf16 autocast when the
CPU has bf16 matrix units (AMX or AVX512-BF16). Without them a bf16 matmul is emulated and far slower
than fp32 (measured on an AVX2-only EPYC: ~0.001 vs ~0.17 TFLOPS), so autocast is then switched off.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from eapo.errors import ConfigError

DTYPE_SETTINGS = ("auto", "float32", "bfloat16")


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


def _check_dtype_setting(setting: str) -> None:
    if setting not in DTYPE_SETTINGS:
        raise ConfigError(
            f"model.dtype: {setting!r} is not supported; expected one of {', '.join(DTYPE_SETTINGS)}"
        )
