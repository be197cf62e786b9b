"""Observation noise functions, with Isaac Lab's signature ``func(data, cfg) -> data``."""

from __future__ import annotations

from typing import Any

import torch


def _apply(data: torch.Tensor, sample: torch.Tensor, operation: str) -> torch.Tensor:
    if operation == "add":
        return data + sample
    if operation == "scale":
        return data * sample
    if operation == "abs":
        return sample
    raise ValueError(f"unknown noise operation '{operation}'; valid: add, scale, abs")


def uniform_noise(data: torch.Tensor, cfg: Any) -> torch.Tensor:
    sample = torch.rand_like(data) * (cfg.n_max - cfg.n_min) + cfg.n_min
    return _apply(data, sample, cfg.operation)


def gaussian_noise(data: torch.Tensor, cfg: Any) -> torch.Tensor:
    sample = cfg.mean + cfg.std * torch.randn_like(data)
    return _apply(data, sample, cfg.operation)
