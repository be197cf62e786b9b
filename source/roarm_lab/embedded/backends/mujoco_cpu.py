"""The MuJoCo C engine stepping every environment in native threads (``mujoco.batch.Batch``).

The model is the scene's (``runtime/scene_model.py``): one articulation, static cuboids, free rigid bodies.
The fields that domain randomization changes (masses, inertias, armature, passive damping, servo gains, contact
friction) are expanded per simulation, so each environment has its own physical parameters without one Python
object per environment. State lives in the batch's rows and is exposed as numpy views; the assets copy it into
torch tensors once per control step.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from mujoco import batch as mjbatch

from roarm_lab.embedded.backends.base import PhysicsBackend
from roarm_lab.embedded.scene_model import SceneModel
from roarm_lab.utils.jit import entry, kernel

_DIVERGENCE_SLICE = slice(mujoco.mjtWarning.mjWARN_BADQPOS.value, mujoco.mjtWarning.mjWARN_BADQACC.value + 1)
assert _DIVERGENCE_SLICE.stop - _DIVERGENCE_SLICE.start == 3  # BADQPOS, BADQVEL, BADQACC are contiguous


_ROW_FIELDS = ("gains", "armature", "friction", "viscous_friction", "joint_vel", "joint_pos")


@entry
@kernel
def _read_articulation(qpos, qvel, xpos, site_xpos, links, sites, joint_pos, joint_vel,
                       frames):  # pragma: no cover - compiled
    """The state copies of ``read_articulation`` in one pass (float64 engine arrays into float32 buffers)."""
    for e in range(joint_pos.shape[0]):
        for j in range(joint_pos.shape[1]):
            joint_pos[e, j] = qpos[e, j]
            joint_vel[e, j] = qvel[e, j]
        for b in range(links):
            for k in range(3):
                frames[e, b, k] = xpos[e, 1 + b, k]
        for s in range(sites.shape[0]):
            for k in range(3):
                frames[e, links + s, k] = site_xpos[e, sites[s], k]


@entry
@kernel
def _write_joint_rows(rows, mask, stiffness, damping, armature, friction, viscous, joint_pos, joint_vel, gainprm,
                      biasprm, dof_armature, dof_damping, coulomb, qpos, qvel):  # pragma: no cover - compiled
    """``write_joint_rows`` for the MuJoCo batch: what ``set_gains`` ... ``write_joint_positions`` write, row by row;
    ``mask[f, j]``: field ``_ROW_FIELDS[f]`` of joint ``j`` is written."""
    for r in range(rows.shape[0]):
        e = rows[r]
        for j in range(stiffness.shape[1]):
            if mask[0, j]:
                kp = np.float64(stiffness[e, j])
                gainprm[e, j, 0] = kp
                biasprm[e, j, 1] = -kp
                biasprm[e, j, 2] = -np.float64(damping[e, j])
            if mask[1, j]:
                dof_armature[e, j] = armature[e, j]
            if mask[2, j]:
                coulomb[e, j] = friction[e, j]
            if mask[3, j]:
                dof_damping[e, j] = viscous[e, j]
            if mask[4, j]:
                qvel[e, j] = joint_vel[e, j]
            if mask[5, j]:
                qpos[e, j] = joint_pos[e, j]


@dataclass(frozen=True)
class FreeBody:
    """Where a free rigid body lives in the model: its body, its free joint's qpos and dof rows, its geom."""

    body: int
    qpos: slice
    qvel: slice
    geom: int


class MujocoCpuBackend(PhysicsBackend):
    """N simulations of a composed scene on ``nthread`` native threads."""

    name = "mujoco-cpu"

    def __init__(self, num_envs: int, physics_dt: float, scene: SceneModel, nthread: int = 0,
                 friction_velocity_eps: float = 0.05, energy: bool = False, cone: str | None = None,
                 impratio: float | None = None):
        spec = scene.spec
        spec.option.timestep = physics_dt
        if cone is not None:
            if cone not in ("pyramidal", "elliptic"):
                raise ValueError(f"physics cone '{cone}' is not MuJoCo's: use 'pyramidal' or 'elliptic'")
            spec.option.cone = getattr(mujoco.mjtCone, f"mjCONE_{cone.upper()}")
        if impratio is not None:
            spec.option.impratio = impratio
        # Coulomb friction of the joints is applied as a smooth torque at the control rate (apply_joint_friction),
        # not as MuJoCo friction-loss constraints, which cost ~40 % of the step for a 6-dof arm.
        self.default_friction = np.array([spec.joint(n).frictionloss for n in scene.joint_names])
        for name in scene.joint_names:
            spec.joint(name).frictionloss = 0.0
        self.model = m = spec.compile()
        if energy:
            m.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_ENERGY
        self._energy_on = energy
        self.num_envs = num_envs
        self.physics_dt = physics_dt
        self.batch = mjbatch.Batch(m, num_envs, nthread=nthread)
        self.batch.reset(keyframe=np.zeros(num_envs, dtype=np.int32))
        nj = len(scene.joint_names)
        if any(m.jnt_qposadr[i] != i or m.jnt_dofadr[i] != i for i in range(nj)):
            raise ValueError("the articulation's joints must be its model's first, one dof each (hinges)")
        self.joint_names = list(scene.joint_names)
        self.body_names = list(scene.link_names) + list(scene.frame_names)
        self.num_mass_bodies = len(scene.link_names)
        self._sites = [m.site(n).id for n in scene.frame_names]
        self._site_ids = np.asarray(self._sites, dtype=np.int64)
        self.objects: dict[str, FreeBody] = {}
        for name, body in scene.objects.items():
            joint = int(m.body(body).jntadr[0])
            qadr, vadr = int(m.jnt_qposadr[joint]), int(m.jnt_dofadr[joint])
            self.objects[name] = FreeBody(m.body(body).id, slice(qadr, qadr + 7), slice(vadr, vadr + 6),
                                          m.geom(name).id)
        self.full_qpos = self.batch.bind("qpos")
        self.full_qvel = self.batch.bind("qvel")
        self.qpos = self.full_qpos[:, :nj]
        self.qvel = self.full_qvel[:, :nj]
        self.ctrl = self.batch.bind("ctrl")
        self.qfrc_applied = self.batch.bind("qfrc_applied")[:, :nj]
        self._xpos = self.batch.bind("xpos")
        self._xmat = self.batch.bind("xmat")
        self._site_xpos = self.batch.bind("site_xpos")
        self._ncon = self.batch.bind("ncon")
        self._energy = self.batch.bind("energy")
        self._warnings = self.batch.warning
        self._divergence_counts = self._warnings[:, _DIVERGENCE_SLICE, 1].sum(axis=1)
        self._friction_eps = friction_velocity_eps
        self.friction = np.tile(self.default_friction, (num_envs, 1))
        self._friction_tmp = np.empty_like(self.friction)
        # per-simulation copies of the fields randomization writes
        self._mass = self.batch.expand("body_mass")
        self._inertia = self.batch.expand("body_inertia")
        self._armature = self.batch.expand("dof_armature")
        self._damping = self.batch.expand("dof_damping")
        self._gainprm = self.batch.expand("actuator_gainprm")
        self._biasprm = self.batch.expand("actuator_biasprm")
        self._geom_friction = self.batch.expand("geom_friction") if self.objects else None
        self._geom_size = self._geom_rbound = self._geom_aabb = None  # expanded when an object is first scaled
        self.default_armature = m.dof_armature[:nj].copy()
        self.default_damping = m.dof_damping[:nj].copy()
        self.default_kp = m.actuator_gainprm[:, 0].copy()
        self.default_kv = -m.actuator_biasprm[:, 2].copy()
        self.joint_limits = m.jnt_range[:nj].copy()
        self.forward()

    # ------------------------------------------------------------------ stepping
    def step(self, nstep: int) -> np.ndarray:
        """Advance all simulations ``nstep`` physics steps; return the mask of simulations that diverged.

        MuJoCo checks every substep for non-finite or huge positions, velocities and accelerations, resets
        such a simulation itself and counts a warning; a rise in those counters (or an error raised by the
        batch) marks the simulation diverged. It is put back at its home keyframe here; the caller resets
        its episode and counts it.
        """
        failed = None
        try:
            self.batch.step(nstep=nstep, stage=mujoco.mjtStage.mjSTAGE_POS.value)
        except mjbatch.SimulationError as err:
            failed = np.zeros(self.num_envs, dtype=bool)
            failed[np.asarray(err.ids)] = True
        counts = self._warnings[:, _DIVERGENCE_SLICE, 1].sum(axis=1)
        bad = counts > self._divergence_counts
        if failed is not None:
            bad |= failed
        if bad.any():
            self._divergence_counts = counts
            ids = np.flatnonzero(bad)
            self.batch.reset(ids, keyframe=np.zeros(len(ids), dtype=np.int32),
                             stage=mujoco.mjtStage.mjSTAGE_POS.value)
        return bad

    def physics_report(self) -> dict[str, np.ndarray]:
        report = {"contacts": self._ncon.astype(np.int32).copy()}
        if self._energy_on:
            report["potential_energy_j"] = self._energy[:, 0].copy()
            report["kinetic_energy_j"] = self._energy[:, 1].copy()
        return report

    def forward(self, env_ids: np.ndarray | None = None) -> None:
        self.batch.forward(env_ids, stage=mujoco.mjtStage.mjSTAGE_POS.value)

    # ------------------------------------------------------------------ articulation state
    def read_articulation(self, joint_pos: np.ndarray, joint_vel: np.ndarray, frames: np.ndarray) -> None:
        _read_articulation(self.full_qpos, self.full_qvel, self._xpos, self._site_xpos, self.num_mass_bodies,
                           self._site_ids, joint_pos, joint_vel, frames)

    def write_joint_rows(self, rows: np.ndarray, fields: dict[str, np.ndarray | None], stiffness: np.ndarray,
                         damping: np.ndarray, armature: np.ndarray, friction: np.ndarray, viscous: np.ndarray,
                         joint_pos: np.ndarray, joint_vel: np.ndarray) -> None:
        mask = np.zeros((len(_ROW_FIELDS), len(self.joint_names)), dtype=np.bool_)
        for f, cols in fields.items():
            mask[_ROW_FIELDS.index(f), slice(None) if cols is None else cols] = True
        _write_joint_rows(rows, mask, stiffness, damping, armature, friction, viscous, joint_pos, joint_vel,
                          self._gainprm, self._biasprm, self._armature, self._damping, self.friction, self.full_qpos,
                          self.full_qvel)
        if "joint_pos" in fields:
            self.forward(rows)

    def frame_positions(self, env_ids: np.ndarray | None = None) -> np.ndarray:
        """(N, links + frames, 3): world positions of the articulation's links, then of its sites."""
        rows = slice(None) if env_ids is None else env_ids
        links = self._xpos[rows, 1:1 + self.num_mass_bodies]
        if not self._sites:
            return links.copy()
        return np.concatenate([links, self._site_xpos[rows][:, self._sites]], axis=1)

    def write_joint_positions(self, env_ids: np.ndarray, qpos: np.ndarray) -> None:
        """Teleport joints of the given simulations and recompute their kinematics."""
        self.qpos[env_ids] = qpos
        self.forward(env_ids)

    def write_joint_velocities(self, env_ids: np.ndarray, qvel: np.ndarray) -> None:
        """Joint velocities of the given simulations. The kinematics stage reads positions only, so unlike a
        position write this needs no ``forward``: a reset that writes both runs the engine once, not twice."""
        self.qvel[env_ids] = qvel

    def set_targets(self, targets: np.ndarray) -> None:
        """Servo targets of every joint of every simulation."""
        self.ctrl[:] = targets

    def apply_joint_friction(self) -> None:
        """Coulomb friction as a smooth torque ``-f tanh(qd / eps)``, held over the control period."""
        tmp = self._friction_tmp  # in place: no temporaries per control step
        np.divide(self.qvel, self._friction_eps, out=tmp)
        np.tanh(tmp, out=tmp)
        np.multiply(tmp, self.friction, out=tmp)
        np.negative(tmp, out=self.qfrc_applied)

    # ------------------------------------------------------------------ free bodies
    def object_state(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(position, quaternion w x y z, linear velocity, angular velocity), all in the world frame, (N, .)."""
        free = self.objects[name]
        qpos, qvel = self.full_qpos[:, free.qpos], self.full_qvel[:, free.qvel]
        rot = self._xmat[:, free.body].reshape(-1, 3, 3)
        # a free joint's angular velocity is in the body frame: turn it into the world's
        ang_w = np.einsum("nij,nj->ni", rot, qvel[:, 3:])
        return qpos[:, :3], qpos[:, 3:], qvel[:, :3], ang_w

    def write_object_pose(self, name: str, env_ids: np.ndarray, pos: np.ndarray, quat_wxyz: np.ndarray) -> None:
        free = self.objects[name]
        rows = self.full_qpos[env_ids]
        rows[:, free.qpos] = np.concatenate([pos, quat_wxyz], axis=1)
        self.full_qpos[env_ids] = rows
        self.forward(env_ids)

    def write_object_velocity(self, name: str, env_ids: np.ndarray, lin_w: np.ndarray, ang_w: np.ndarray) -> None:
        free = self.objects[name]
        rot = self._xmat[env_ids, free.body].reshape(-1, 3, 3)
        rows = self.full_qvel[env_ids]
        rows[:, free.qvel] = np.concatenate([lin_w, np.einsum("nji,nj->ni", rot, ang_w)], axis=1)
        self.full_qvel[env_ids] = rows

    def object_mass(self, name: str) -> tuple[float, np.ndarray]:
        """Nominal mass and principal inertia of a free body."""
        body = self.objects[name].body
        return float(self.model.body_mass[body]), self.model.body_inertia[body].copy()

    def set_object_mass(self, name: str, env_ids: np.ndarray, mass: np.ndarray, inertia_diag: np.ndarray) -> None:
        body = self.objects[name].body
        self._mass[env_ids, body] = mass
        self._inertia[env_ids, body] = inertia_diag

    def set_object_friction(self, name: str, env_ids: np.ndarray, friction: np.ndarray) -> None:
        """Sliding friction of a free body's geom (MuJoCo takes the larger coefficient of a contact pair)."""
        self._geom_friction[env_ids, self.objects[name].geom, 0] = friction

    def scale_object(self, name: str, env_ids: np.ndarray, factor: np.ndarray) -> None:
        """A free body's box scaled per environment (N, 3) from its model size; the collision bounds follow."""
        if self._geom_size is None:
            self._geom_size = self.batch.expand("geom_size")
            self._geom_rbound = self.batch.expand("geom_rbound")
            self._geom_aabb = self.batch.expand("geom_aabb")
        geom = self.objects[name].geom
        half = self.model.geom_size[geom] * np.asarray(factor, dtype=np.float64)
        self._geom_size[env_ids, geom] = half
        self._geom_rbound[env_ids, geom] = np.linalg.norm(half, axis=1)
        self._geom_aabb[env_ids, geom, 3:] = half

    def object_half_size(self, name: str) -> np.ndarray:
        """(N, 3) half sizes of a free body's box in each environment."""
        geom = self.objects[name].geom
        if self._geom_size is None:
            return np.tile(self.model.geom_size[geom], (self.num_envs, 1))
        return self._geom_size[:, geom].copy()

    # ------------------------------------------------------------------ per-environment parameters
    def body_mass(self) -> np.ndarray:
        n = self.num_mass_bodies
        return np.concatenate([self.model.body_mass[1:1 + n], np.zeros(len(self.body_names) - n)])

    def body_inertia_diag(self) -> np.ndarray:
        n = self.num_mass_bodies
        return np.concatenate([self.model.body_inertia[1:1 + n], np.zeros((len(self.body_names) - n, 3))])

    def set_masses(self, env_ids: np.ndarray, body_ids: np.ndarray, masses: np.ndarray) -> None:
        self._mass[np.ix_(env_ids, body_ids + 1)] = masses

    def set_inertias(self, env_ids: np.ndarray, body_ids: np.ndarray, inertia_diag: np.ndarray) -> None:
        """Principal moments (the body's inertia frame, as compiled, is unchanged)."""
        self._inertia[np.ix_(env_ids, body_ids + 1)] = inertia_diag

    def set_effort_limits(self, joint_ids: np.ndarray, limits: np.ndarray) -> None:
        """Servo torque limits (N m), the same in every simulation (a model field, not expanded)."""
        self.model.actuator_forcerange[joint_ids] = np.stack([-limits, limits], axis=-1)

    def set_gains(self, env_ids: np.ndarray, joint_ids: np.ndarray, kp: np.ndarray, kv: np.ndarray) -> None:
        idx = np.ix_(env_ids, joint_ids)
        self._gainprm[idx + (0,)] = kp
        self._biasprm[idx + (1,)] = -kp
        self._biasprm[idx + (2,)] = -kv

    def set_armature(self, env_ids: np.ndarray, joint_ids: np.ndarray, armature: np.ndarray) -> None:
        self._armature[np.ix_(env_ids, joint_ids)] = armature

    def set_damping(self, env_ids: np.ndarray, joint_ids: np.ndarray, damping: np.ndarray) -> None:
        self._damping[np.ix_(env_ids, joint_ids)] = damping

    def set_friction(self, env_ids: np.ndarray, joint_ids: np.ndarray, friction: np.ndarray) -> None:
        self.friction[np.ix_(env_ids, joint_ids)] = friction
