"""Export a trained policy: ``policy.onnx``, ``policy.pt`` (TorchScript) and ``policy.json``.

``policy.json`` is the contract every consumer (gateway, real-arm bridge, Kit extension) reads: the
observation layout with names and slices, the action convention with scale, offset and limits, the
control period, and the hashes that tie the artifact to the task and randomization config.
The observation normalizer is folded into both model files: they take raw observations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from roarm_lab.assets.joint_table import JOINTS
from roarm_lab.utils.io import atomic_write, atomic_write_json
from roarm_lab.utils.provenance import config_hash, git_hash

SCHEMA_VERSION = 1
POLICY_GROUP = "policy"


def observation_layout(env: Any, group: str = POLICY_GROUP) -> list[dict[str, Any]]:
    """Names, sizes and slices of the terms of an observation group, in the order the policy sees them."""
    manager = env.observation_manager
    names = manager.active_terms[group]
    dims = manager.group_obs_term_dim[group]
    layout, start = [], 0
    for name, dim in zip(names, dims):
        size = int(dim[0])
        layout.append({"name": name, "start": start, "stop": start + size, "size": size})
        start += size
    return layout


def policy_metadata(env: Any, task: str) -> dict[str, Any]:
    """The ``policy.json`` document for the environment's action term and policy observation group."""
    term_name = env.action_manager.active_terms[0]
    term = env.action_manager.get_term(term_name)
    lower, upper = term.limits
    by_name = {j.name: j for j in JOINTS}
    action_joints = [by_name[n] for n in term.joint_names]
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task,
        "observation": {
            "group": POLICY_GROUP,
            "size": int(env.observation_manager.group_obs_dim[POLICY_GROUP][0]),
            "terms": observation_layout(env),
            "normalizer": "folded into the model (feed raw observations)",
            "joint_names": [j.name for j in action_joints],
        },
        "action": {
            "term": term_name,
            "size": term.action_dim,
            "names": [j.short for j in action_joints],
            "joint_names": [j.name for j in action_joints],
            "mode": term.mode,
            "convention": ("relative joint targets: target_t = clamp(target_{t-1} + scale * action, lower, upper), "
                           "target_0 = measured joint positions" if term.mode == "relative" else
                           "absolute joint targets: target = clamp(offset + scale * action, lower, upper)")
                          + "; then target_t - target_{t-1} is clamped to +-max_step (if not null)",
            "scale": term.scale.tolist(),
            "offset": term.offset.tolist(),
            "lower": lower.tolist(),
            "upper": upper.tolist(),
            "max_step": term.max_step,
            "firmware_fields": [j.firmware_field for j in action_joints],
        },
        "control_period_s": env.step_dt,
        "physics_dt_s": env.physics_dt,
        "decimation": env.cfg.decimation,
        "default_joint_pos": {j.name: j.home for j in JOINTS},
        "config_hash": config_hash(env.cfg),
        "git": git_hash(),
    }


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
    meta = policy_metadata(env, task)
    meta["files"] = {"onnx": "policy.onnx", "torchscript": "policy.pt",
                     "onnx_input": onnx_model.input_names[0], "onnx_output": onnx_model.output_names[0]}
    atomic_write_json(out / "policy.json", meta)
    return {"onnx": out / "policy.onnx", "torchscript": out / "policy.pt", "metadata": out / "policy.json"}


class OnnxPolicy:
    """The exported ONNX policy as a callable on torch tensors (what play.py evaluates)."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: obs.detach().cpu().numpy().astype("float32")})[0]
        return torch.from_numpy(out)
