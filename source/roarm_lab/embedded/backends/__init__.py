"""Physics backends of the embedded runtime: one engine-facing method per effect, nothing task-specific."""

from roarm_lab.embedded.backends.base import PhysicsBackend

BACKENDS = {"mujoco-cpu": "roarm_lab.embedded.backends.mujoco_cpu:MujocoCpuBackend"}


def make_backend(name: str, **kwargs) -> PhysicsBackend:
    """Construct a backend by name; an unknown name lists the available ones."""
    import importlib

    if name not in BACKENDS:
        raise ValueError(f"unknown physics backend '{name}'; available: {sorted(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
