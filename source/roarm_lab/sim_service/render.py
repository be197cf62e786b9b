"""PNG images of the scene from named cameras, with MuJoCo's offscreen renderer (headless: EGL or OSMesa).

The picture is drawn from the project's own MuJoCo model posed with the environment's joint positions (read
through the manager-based API), so it shows the same arm on either runtime; the target is a green sphere.
``MUJOCO_GL`` chooses the OpenGL platform and must be set before MuJoCo is imported: the service sets
``egl`` when it is unset and there is no display (``osmesa`` is the software fallback; docs/sim_service.md).
An OpenGL context belongs to the thread that made it: create and use a renderer on one thread.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET_RGBA = (0.1, 0.9, 0.2, 0.9)
TARGET_RADIUS_M = 0.018


@dataclass(frozen=True)
class Camera:
    lookat: tuple[float, float, float]
    distance: float
    azimuth: float
    elevation: float
    description: str


CAMERAS: dict[str, Camera] = {
    # each frames the whole reachable workspace (x -0.31..0.53, y -0.52..0.52, z up to 0.58 m above the base), so
    # any target the task can set is in the picture
    "iso": Camera((0.05, 0.0, 0.27), 1.55, 140.0, -22.0, "three-quarter view from the front left (default)"),
    "front": Camera((0.1, 0.0, 0.27), 1.5, 180.0, -8.0, "from +x, looking back at the arm"),
    "side": Camera((0.1, 0.0, 0.27), 1.5, 90.0, -8.0, "from -y, the arm's left side"),
    "top": Camera((0.1, 0.0, 0.0), 1.7, 90.0, -89.0, "from above, x to the right"),
    # the table in front of the base, where the lift task's cube lies and its goals are
    "near": Camera((0.2, 0.0, 0.1), 0.75, 125.0, -18.0, "close-up of the table in front of the arm (lift)"),
}


class RenderError(RuntimeError):
    pass


@dataclass(frozen=True)
class SceneObject:
    """A box of the scene (a task's cube) where the environment has it: drawn, not simulated, by the picture."""

    half_size: tuple[float, float, float]
    pos_w: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]
    rgba: tuple[float, float, float, float]

    def rotation(self) -> np.ndarray:
        x, y, z, w = self.quat_xyzw
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def gl_platform() -> str:
    return os.environ.get("MUJOCO_GL", "") or "(unset)"


class ModelMirror:
    """The project's MuJoCo model posed with an environment's joint positions (matched by joint name)."""

    def __init__(self, width: int = 640, height: int = 480):
        import mujoco

        from roarm_lab.assets.mjcf import TABLE_GEOM, build_model

        self._mj = mujoco
        self.model = build_model()
        # the model has no lights: a brighter headlight and a lighter table make the arm readable
        self.model.vis.headlight.ambient[:] = (0.45, 0.45, 0.45)
        self.model.vis.headlight.diffuse[:] = (0.6, 0.6, 0.6)
        self.model.vis.headlight.specular[:] = (0.1, 0.1, 0.1)
        self.model.geom(TABLE_GEOM).rgba[:] = (0.62, 0.64, 0.68, 1.0)
        self.model.vis.global_.offwidth = max(width, self.model.vis.global_.offwidth)
        self.model.vis.global_.offheight = max(height, self.model.vis.global_.offheight)
        self.data = mujoco.MjData(self.model)
        self._qpos_adr: dict[str, int] = {self.model.joint(i).name: int(self.model.jnt_qposadr[i])
                                          for i in range(self.model.njnt)}

    def pose(self, joint_names: list[str], joint_pos: np.ndarray) -> None:
        for name, q in zip(joint_names, np.asarray(joint_pos, dtype=np.float64)):
            if name in self._qpos_adr:
                self.data.qpos[self._qpos_adr[name]] = q
        self._mj.mj_kinematics(self.model, self.data)

    def add_target(self, scene: Any, target_w: np.ndarray | None, objects: list[SceneObject] = ()) -> None:
        """The target marker and the scene's objects as extra geoms of a scene (a renderer's or the viewer's)."""
        mj = self._mj
        for obj in objects:
            if scene.ngeom >= scene.maxgeom:
                return
            mj.mjv_initGeom(scene.geoms[scene.ngeom], mj.mjtGeom.mjGEOM_BOX, np.asarray(obj.half_size, np.float64),
                            np.asarray(obj.pos_w, np.float64), obj.rotation().reshape(-1),
                            np.asarray(obj.rgba, dtype=np.float32))
            scene.ngeom += 1
        if target_w is None or scene.ngeom >= scene.maxgeom:
            return
        mj.mjv_initGeom(scene.geoms[scene.ngeom], mj.mjtGeom.mjGEOM_SPHERE, np.array([TARGET_RADIUS_M, 0, 0]),
                        np.asarray(target_w, dtype=np.float64), np.eye(3).reshape(-1),
                        np.asarray(TARGET_RGBA, dtype=np.float32))
        scene.ngeom += 1


class SceneRenderer(ModelMirror):
    """One offscreen renderer over the arm's MuJoCo model; ``render`` returns PNG bytes."""

    def __init__(self, width: int = 640, height: int = 480):
        super().__init__(width, height)
        self.width, self.height = width, height
        try:
            self._renderer = self._mj.Renderer(self.model, height, width)
        except Exception as err:  # no OpenGL platform: say which packages and variable make one
            raise RenderError(
                f"no offscreen OpenGL context (MUJOCO_GL={gl_platform()}: {type(err).__name__}: {err}). Headless Linux "
                "needs MUJOCO_GL=egl (apt: libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (apt: libosmesa6), set "
                "before the simulator service starts") from None

    def render(self, camera: str, joint_names: list[str], joint_pos: np.ndarray,
               target_w: np.ndarray | None = None, objects: list[SceneObject] = ()) -> bytes:
        if camera not in CAMERAS:
            raise KeyError(f"unknown camera '{camera}'; cameras: {sorted(CAMERAS)}")
        mj = self._mj
        self.pose(joint_names, joint_pos)
        cam = mj.MjvCamera()
        spec = CAMERAS[camera]
        cam.type = mj.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = spec.lookat
        cam.distance, cam.azimuth, cam.elevation = spec.distance, spec.azimuth, spec.elevation
        self._renderer.update_scene(self.data, camera=cam)
        self.add_target(self._renderer.scene, target_w, objects)
        return encode_png(self._renderer.render())

    def close(self) -> None:
        self._renderer.close()


class SceneViewer(ModelMirror):
    """MuJoCo's viewer window mirroring the environment (``start_sim(headless=false)``; needs a display)."""

    def __init__(self) -> None:
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise RenderError("the viewer needs a display (DISPLAY is not set); run headless and use render")
        super().__init__()
        import mujoco.viewer

        self.handle = mujoco.viewer.launch_passive(self.model, self.data, show_left_ui=False, show_right_ui=False)
        self._last = 0.0

    def sync(self, joint_names: list[str], joint_pos: np.ndarray, target_w: np.ndarray | None,
             objects: list[SceneObject] = (), min_interval_s: float = 1 / 30) -> None:
        now = time.monotonic()
        if now - self._last < min_interval_s or not self.handle.is_running():
            return
        self._last = now
        with self.handle.lock():
            self.pose(joint_names, joint_pos)
            self.handle.user_scn.ngeom = 0
            self.add_target(self.handle.user_scn, target_w, objects)
        self.handle.sync()

    def close(self) -> None:
        self.handle.close()
        # Let the viewer's own thread end before GLFW is torn down at exit: is_running() turns false while that
        # thread still tears its window down, and the process then died in glfw.terminate (SIGSEGV).
        for thread in threading.enumerate():
            if getattr(getattr(thread, "_target", None), "__name__", "") == "_launch_internal":
                thread.join(timeout=5.0)


def encode_png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG")
    return buf.getvalue()
