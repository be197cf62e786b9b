"""The MuJoCo C engine stepping every environment in native threads (``mujoco.batch.Batch``).

One ``MjModel`` is compiled; the fields that domain randomization changes (masses, inertias, armature,
passive damping and servo gains) are expanded per simulation, so each environment has its
own physical parameters without one Python object per environment. State lives in the batch's rows and
is exposed as numpy views; the articulation copies it into torch tensors once per control step.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco import batch as mjbatch

from roarm_lab.assets.joint_table import JOINTS, TCP_FRAME
from roarm_lab.assets.mjcf import build_spec
from roarm_lab.runtime.backends.base import PhysicsBackend

_DIVERGENCE_SLICE = slice(mujoco.mjtWarning.mjWARN_BADQPOS.value, mujoco.mjtWarning.mjWARN_BADQACC.value + 1)
assert _DIVERGENCE_SLICE.stop - _DIVERGENCE_SLICE.start == 3  # BADQPOS, BADQVEL, BADQACC are contiguous


class MujocoCpuBackend(PhysicsBackend):
    """N simulations of the RoArm-M3 model on ``nthread`` native threads."""

    name = "mujoco-cpu"

    def __init__(self, num_envs: int, physics_dt: float, nthread: int = 0, friction_velocity_eps: float = 0.05,
                 energy: bool = False):
        spec = build_spec(physics_dt)
        # Coulomb friction is applied as a smooth torque at the control rate (see apply_joint_friction),
        # not as MuJoCo friction-loss constraints, which cost ~40 % of the step for a 6-dof arm.
        for j in JOINTS:
            spec.joint(j.name).frictionloss = 0.0
        self.model = spec.compile()
        if energy:
            self.model.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_ENERGY
        self._energy_on = energy
        self.num_envs = num_envs
        self.physics_dt = physics_dt
        self.batch = mjbatch.Batch(self.model, num_envs, nthread=nthread)
        self.batch.reset(keyframe=np.zeros(num_envs, dtype=np.int32))
        m = self.model
        self.joint_names = [m.joint(i).name for i in range(m.njnt)]
        bodies = [m.body(i).name for i in range(1, m.nbody)]
        self.body_names = bodies + [TCP_FRAME]
        self.num_mass_bodies = len(bodies)
        self._tcp_site = m.site(TCP_FRAME).id
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.ctrl = self.batch.bind("ctrl")
        self.qfrc_applied = self.batch.bind("qfrc_applied")
        self._xpos = self.batch.bind("xpos")
        self._xquat = self.batch.bind("xquat")
        self._site_xpos = self.batch.bind("site_xpos")
        self._ncon = self.batch.bind("ncon")
        self._energy = self.batch.bind("energy")
        self._warnings = self.batch.warning
        self._divergence_counts = self._warnings[:, _DIVERGENCE_SLICE, 1].sum(axis=1)
        self._friction_eps = friction_velocity_eps
        self.friction = np.tile(np.array([j.friction for j in JOINTS]), (num_envs, 1))
        self._friction_tmp = np.empty_like(self.friction)
        # per-simulation copies of the fields randomization writes
        self._mass = self.batch.expand("body_mass")
        self._inertia = self.batch.expand("body_inertia")
        self._armature = self.batch.expand("dof_armature")
        self._damping = self.batch.expand("dof_damping")
        self._gainprm = self.batch.expand("actuator_gainprm")
        self._biasprm = self.batch.expand("actuator_biasprm")
        self.default_armature = m.dof_armature.copy()
        self.default_damping = m.dof_damping.copy()
        self.default_kp = m.actuator_gainprm[:, 0].copy()
        self.default_kv = -m.actuator_biasprm[:, 2].copy()
        self.default_friction = self.friction[0].copy()
        self.joint_limits = m.jnt_range.copy()
        self.velocity_limits = np.array([j.velocity for j in JOINTS])
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

    # ------------------------------------------------------------------ state
    def frame_positions(self, env_ids: np.ndarray | None = None) -> np.ndarray:
        """(N, nbody-1+1, 3): world positions of every body after the world, then the TCP site (of ``env_ids``)."""
        rows = slice(None) if env_ids is None else env_ids
        site = self._tcp_site
        return np.concatenate([self._xpos[rows, 1:], self._site_xpos[rows, site: site + 1]], axis=1)

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

    # ------------------------------------------------------------------ per-environment parameters
    def body_mass(self) -> np.ndarray:
        return np.concatenate([self.model.body_mass[1:], np.zeros(len(self.body_names) - self.num_mass_bodies)])

    def body_inertia_diag(self) -> np.ndarray:
        return np.concatenate([self.model.body_inertia[1:],
                               np.zeros((len(self.body_names) - self.num_mass_bodies, 3))])

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
