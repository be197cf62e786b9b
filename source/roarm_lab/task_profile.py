"""What a task reports, declared by the task: the layers above it (evaluation, progress, plots, the faces) read this.

A task folder (``tasks/<name>/``) holds its env config, its agent's config name and a ``profile.py`` with one
``TaskProfile``. Every figure is read from the task's own noiseless observation group (``critic``), so the same
profile works on both runtimes and at an episode's end (from the final observation, before the reset). Thresholds
are not repeated here: a ``Bound`` names the field of the task's command config that holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class Measure:
    """A figure of the task's state, from one term of the noiseless observation group."""

    name: str
    """Key in metrics and records, with its unit: ``hand_error_m``."""
    label: str
    """What a person reads: ``hand error``."""
    term: str
    """The observation term it is read from."""
    reduce: Literal["norm", "value"] = "norm"
    """``norm``: the length of the term's vector; ``value``: the term's single value."""
    unit: str = "m"

    def read(self, group: torch.Tensor, term_slice: slice) -> torch.Tensor:
        part = group[:, term_slice]
        return torch.linalg.vector_norm(part, dim=-1) if self.reduce == "norm" else part[:, 0]


@dataclass(frozen=True)
class Bound:
    """Part of the success definition: ``measure`` at most / at least the command config's field ``threshold``."""

    measure: str
    threshold: str
    at_most: bool = True


@dataclass(frozen=True)
class TaskProfile:
    title: str
    """One line: what the task is."""
    command: str
    """The command term that sets the goal and logs the training metrics (``Metrics/<command>/...``)."""
    measures: tuple[Measure, ...]
    success: tuple[Bound, ...]
    """An episode succeeds when its final state meets every bound."""
    success_text: str
    """The success definition in words, with the numbers (for reports and the faces)."""
    training_error: str
    """The command metric that training logs as the task's error (``Metrics/<command>/<training_error>``)."""
    hand_frame: str = "hand_tcp"
    """The robot body whose position rollouts record as the hand's."""
    arm_action: str = "arm_action"
    gripper_action: str | None = None
    group: str = "critic"
    """The observation group the measures are read from (noiseless, present in evaluation)."""
    object_terms: tuple[str, ...] = field(default_factory=tuple)
    """Policy observation terms that need an object's pose: the real-arm bridge has no source for them yet."""

    @property
    def primary(self) -> Measure:
        """The first measure: the one plotted over an episode and shown first."""
        return self.measures[0]

    def measure(self, name: str) -> Measure:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"the task reports no measure '{name}'; it reports {[m.name for m in self.measures]}")

    @property
    def success_key(self) -> str:
        return f"Metrics/{self.command}/success_rate"

    @property
    def error_key(self) -> str:
        return f"Metrics/{self.command}/{self.training_error}"

    def thresholds(self, command_cfg: Any) -> dict[str, float]:
        """Each bound's threshold, read from the command config (the one place the numbers live)."""
        return {b.threshold: float(getattr(command_cfg, b.threshold)) for b in self.success}

    def succeeded(self, values: dict[str, torch.Tensor], command_cfg: Any) -> torch.Tensor:
        """Per environment, whether the measured ``values`` meet every bound."""
        ok = None
        for bound in self.success:
            limit = float(getattr(command_cfg, bound.threshold))
            met = values[bound.measure] <= limit if bound.at_most else values[bound.measure] >= limit
            ok = met if ok is None else ok & met
        return ok
