"""Simulator tools: the interactive environment in the simulator service. None of them touches the real arm."""


import base64
import secrets
import time
from typing import Annotated

import numpy as np
from mcp.server import MCPServer
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import Field

from roarm_lab.control.errors import ControlError
from roarm_lab.control.lab import Lab
from roarm_lab.control.models import (Done, InferResult, JointState, ObservationGroup, ObservationResult,
                                      PolicyRunResult, RenderInfo, RobotInfo, RobotJoint, RobotsResult, RolloutResult,
                                      SimInfo, TargetsResult)
from roarm_lab.control.sim import joint_state
from roarm_lab.control import rules
from roarm_lab.mcp_server.translate import guard, within

ROBOT = "roarm_m3"
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
SIM = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
JointValues = Annotated[list[float] | dict[str, float], Field(
    description="radians: a list with one value per arm joint [base, shoulder, elbow, wrist, roll] in the order start_sim "
                "reports, or a map of some joints by short name, e.g. {\"base\": 0.5}")]
Target = Annotated[list[float] | None, Field(description="hand target [x, y, z] in metres in the robot base frame "
                                                         "(x forward, y left, z up from the base); null keeps the "
                                                         "current target")]
PolicyRef = Annotated[str | None, Field(description="a run id (list_runs), a training job id, or a path to an "
                                                    "exported/ folder inside the runs folder")]


def register(mcp: MCPServer, lab: Lab) -> None:

    @mcp.tool(annotations=SIM)
    @guard
    def start_sim(task: str = "RoArm-Reach-v0",
                  headless: Annotated[bool, Field(description="true (default): no window; false: open MuJoCo's "
                                                  "viewer on this machine's display")] = True,
                  realtime: Annotated[bool, Field(description="true: the simulator steps itself at the control "
                                                  "period (30 Hz) like the real arm; false (default): it advances "
                                                  "only when tools step it, as fast as possible")] = False,
                  seed: int = 0, randomize: bool = False) -> SimInfo:
        """Start the simulator service with one interactive environment of a task (about 5-20 s).

        The nominal arm (randomize=true turns domain randomization on), a fixed target that only changes when you
        set one. Only one simulator runs at a time: a second start_sim is refused until stop_sim. headless=false
        opens a viewer window (needs a display; use realtime=true to watch motion at the arm's speed); images
        come from render_sim either way. Never touches the real arm.
        """
        from roarm_lab.control.training import validate_task
        from roarm_lab.sim_service.render import CAMERAS

        validate_task(task)
        spec = lab.sim.start(task, headless, realtime, seed, randomize)["spec"]
        state = lab.sim.state()
        return SimInfo(task=spec["task"], endpoint=lab.sim.client.endpoint, realtime=spec["realtime"],
                       control_period_s=spec["control_period_s"], joint_names=lab.sim.arm_names,
                       lower_rad=spec["action"]["lower"], upper_rad=spec["action"]["upper"],
                       observation_terms=spec["observation"]["policy"], cameras=sorted(CAMERAS), state=state,
                       log=str(lab.sim.proc.log_path), pid=lab.sim.proc.pid)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                                          open_world_hint=False))
    @guard
    def stop_sim() -> Done:
        """Stop the simulator service: its process exits and the scene is gone (start_sim builds a new one). Safe to
        call when none runs; a policy run in progress ends with it."""
        was = lab.sim.stop()
        return Done(done=was, message="simulator stopped" if was else "no simulator was running")

    def robot_info() -> RobotInfo:
        from roarm_lab.assets.joint_table import BASE_HEIGHT_M, JOINTS, TCP_FRAME
        from roarm_lab.assets.urdf import URDF_PATH
        from roarm_lab.registry import registered_tasks

        return RobotInfo(name=ROBOT, description="Waveshare RoArm-M3 desk arm: 5 arm joints and a gripper, serial bus "
                         "servos; the project's own URDF and MuJoCo model (primitive shapes)",
                         joints=[RobotJoint(name=j.short, urdf_name=j.name, lower_rad=j.lower, upper_rad=j.upper,
                                            home_rad=j.home) for j in JOINTS],
                         tcp_frame=TCP_FRAME, base_height_m=BASE_HEIGHT_M, tasks=registered_tasks(),
                         urdf=str(URDF_PATH), loaded_in_sim=lab.sim.running())

    @mcp.tool(annotations=READ)
    @guard
    def list_robots() -> RobotsResult:
        """The robots this lab models (the RoArm-M3), with their joints, limits (rad), home pose and tasks."""
        return RobotsResult(robots=[robot_info()])

    @mcp.tool(annotations=READ)
    @guard
    def load_robot(name: Annotated[str, Field(description="robot name from list_robots (roarm_m3)")]) -> RobotInfo:
        """Select a robot by name and describe it. The simulator loads the robot of its task in start_sim, so this
        only checks the name; the RoArm-M3 is the one robot here."""
        if name.lower().replace("-", "_") not in (ROBOT, "roarm_m3", "roarm"):
            raise ControlError(f"unknown robot '{name}'; robots: ['{ROBOT}']")
        return robot_info()

    @mcp.tool(annotations=READ)
    @guard
    def get_joint_state() -> JointState:
        """The simulated arm now: each joint's measured position, newest commanded target and held goal (rad),
        the joint limits, the hand and target positions (m, base frame) and the hand error."""
        return lab.sim.state()

    @mcp.tool(annotations=SIM)
    @guard
    def set_joint_targets(targets: JointValues,
                          steps: Annotated[int, within(rules.SETTLE_STEPS, "control steps to simulate (or, in "
                                                      "real time, to wait) before answering; 30 steps = 1 s")] = 30
                          ) -> TargetsResult:
        """Hold the simulated arm joints at these positions (rad) and let it move toward them.

        Values outside the joint box are clamped, and the result names the clamped joints. The joint targets
        change by at most 0.1 rad per step and the servos slew at about 2 rad/s, so a move of 1 rad takes about
        half a second (15 steps) plus settling. NaN or Inf is refused.
        A running policy must end first (run_policy_in_sim finishes by itself).
        """
        return lab.sim.move(targets, steps, relative=False)

    @mcp.tool(annotations=SIM)
    @guard
    def apply_action(joints_delta: Annotated[list[float] | dict[str, float], Field(
                         description="radians to add to each arm joint's current target (a list per joint, or a map "
                                     "by short name, e.g. {\"elbow\": -0.2})")],
                     steps: Annotated[int, within(rules.SETTLE_STEPS, "control steps to simulate (30 = 1 s)")] = 30
                     ) -> TargetsResult:
        """Move the simulated joints by a relative amount (rad) from their current targets; clamped to the box."""
        return lab.sim.move(joints_delta, steps, relative=True)

    @mcp.tool(annotations=READ)
    @guard
    def capture_observation() -> ObservationResult:
        """The observation the policy sees now, by term (joint_pos, joint_vel, ee_target, ee_position, actions,
        joint_target, ee_error; the names, order and slices of the export's policy.json), and the critic's group."""
        reply = lab.sim.call("observation")
        groups = {g: ObservationGroup(**v) for g, v in reply["observation"].items()}
        return ObservationResult(groups=groups, state=joint_state(reply["state"]))

    @mcp.tool(annotations=READ)
    @guard
    def policy_infer(policy: PolicyRef,
                     observation: Annotated[list[float] | dict[str, list[float]] | None, Field(
                         description="a flat observation vector, or a map of its terms by name; null: capture it "
                                     "from the running simulator")] = None) -> InferResult:
        """Run an exported policy once on an observation and return its raw action and the joint targets it
        implies under policy.json's action convention (from the measured pose). Moves nothing."""
        return lab.infer(policy, observation)

    @mcp.tool(annotations=SIM)
    @guard
    def rollout_capture(policy: PolicyRef, episodes: Annotated[int, within(rules.ROLLOUT_EPISODES, "held-out episodes")] = 8,
                        randomize: bool = False) -> RolloutResult:
        """Record held-out episodes of a policy (3 s each, one target each) in the simulator's task: one
        episode_XXXXX.npz per episode (obs, actions, rewards, dones, hand and target positions, error) and a
        meta.json, the format play.py --record-rollouts writes. Needs start_sim; up to 64 episodes (seconds)."""
        name = f"rollouts-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        reply = lab.sim.call("record", policy=lab.policy_source(policy, False), episodes=episodes, randomize=randomize,
                             name=name, timeout_ms=120000)["record"]
        m = reply["metrics"]
        return RolloutResult(dir=reply["dir"], episodes=reply["episodes"], success_rate=m["success_rate"],
                             mean_final_error_m=m["mean_final_error_m"], metrics=m)

    @mcp.tool(annotations=READ)
    @guard
    def render_sim(camera: Annotated[str, Field(description="iso (default), front, side or top")] = "iso",
                   width: Annotated[int, within(rules.RENDER_WIDTH, "pixels")] = 640,
                   height: Annotated[int, within(rules.RENDER_HEIGHT, "pixels")] = 480) -> Annotated[CallToolResult, RenderInfo]:
        """A PNG picture of the simulated scene from a named camera; the green sphere is the hand target."""
        reply = lab.sim.call("render", camera=camera, width=width, height=height)
        state = lab.sim.state()
        info = RenderInfo(camera=reply["camera"], width=reply["width"], height=reply["height"], step=state.step,
                          cameras=reply["cameras"])
        text = (f"camera {info.camera}, step {info.step}: hand {np.round(state.hand_m, 3).tolist()} m, target "
                f"{np.round(state.target_m, 3).tolist()} m, error {100 * state.error_m:.1f} cm")
        return CallToolResult(content=[ImageContent(type="image", data=base64.b64encode(reply["png"]).decode(),
                                                    mime_type="image/png"), TextContent(type="text", text=text)],
                              structured_content=info.model_dump(mode="json"))

    @mcp.tool(annotations=SIM)
    @guard
    def run_policy_in_sim(policy: PolicyRef = None, target: Target = None,
                          max_steps: Annotated[int, within(rules.POLICY_STEPS, "control steps at most "
                                                          "(30 per simulated second)")] = 300,
                          use_gateway: Annotated[bool, Field(description="take actions from the running policy "
                                                             "gateway (start_gateway) instead of running the "
                                                             "export here")] = False,
                          until_reached: bool = True) -> PolicyRunResult:
        """Run an exported policy closed-loop in the simulator toward a hand target, until the hand stays within
        the success threshold (2 cm) or max_steps pass; returns the error at start and end and a trace.

        Simulation only: never sends anything to the real arm. In a real-time simulator this waits up to 20 s.
        """
        fields = {"policy": lab.policy_source(policy, use_gateway), "max_steps": max_steps, "until_reached": until_reached}
        if target is not None:
            fields["target"] = [float(v) for v in target]
        reply = lab.sim.call("run_policy", timeout_ms=120000, **fields)
        result = reply["policy"]
        if not result.get("done") and lab.sim.spec["realtime"]:
            end = time.monotonic() + 20.0
            while not result.get("done") and time.monotonic() < end:
                time.sleep(0.25)
                result = lab.sim.call("status")["policy"]
        state = lab.sim.state()
        return PolicyRunResult(source=result.get("source", ""), done=bool(result.get("done")),
                               stopped=result.get("stopped"), steps=result.get("steps", 0),
                               reached=bool(result.get("reached")), reached_step=result.get("reached_step"),
                               initial_error_m=result.get("initial_error_m"), final_error_m=result.get("final_error_m"),
                               min_error_m=result.get("min_error_m"), error_trace_m=result.get("error_trace_m", []),
                               trace_every_steps=result.get("trace_every_steps", 1),
                               hold_steps=result.get("hold_steps", 0), target_m=result.get("target_b", state.target_m),
                               state=state)

