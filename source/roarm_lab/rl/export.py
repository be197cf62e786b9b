"""Export a trained policy: ``policy.onnx``, ``policy.pt`` (TorchScript) and ``policy.json``.

``policy.json`` is the contract every consumer reads (``roarm_lab.policy.spec`` writes, reads and checks it):
the observation layout with names and slices, the action convention with scale, offset and limits, the
control period, and the hashes that tie the artifact to the task and randomization config.
The observation normalizer is folded into both model files: they take raw observations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from roarm_lab.policy.spec import build_spec
from roarm_lab.utils.io import atomic_write, atomic_write_json


def _save_onnx(model: torch.nn.Module, path: Path) -> None:
    model.eval()

    def write(tmp: str) -> None:
        # torch.onnx writes the file itself; export to the temporary name, then it is renamed in place.
        torch.onnx.export(model, model.get_dummy_inputs(), tmp, export_params=True, opset_version=18,
                          input_names=model.input_names, output_names=model.output_names, dynamo=False,
                          dynamic_axes={model.input_names[0]: {0: "batch"}, model.output_names[0]: {0: "batch"}})

    atomic_write(path, write)


def export_policy(actor: Any, env: Any, task: str, out_dir: str | Path) -> dict[str, Path]:
    """Write the three artifact files atomically into ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jit_model = torch.jit.script(actor.as_jit().to("cpu").eval())
    atomic_write(out / "policy.pt", lambda tmp: jit_model.save(tmp))
    onnx_model = actor.as_onnx(verbose=False).to("cpu")
    _save_onnx(onnx_model, out / "policy.onnx")
    meta = build_spec(env, task)
    meta["files"] = {"onnx": "policy.onnx", "torchscript": "policy.pt",
                     "onnx_input": onnx_model.input_names[0], "onnx_output": onnx_model.output_names[0]}
    atomic_write_json(out / "policy.json", meta)
    return {"onnx": out / "policy.onnx", "torchscript": out / "policy.pt", "metadata": out / "policy.json"}
