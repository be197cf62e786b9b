"""Simulator tools: the interactive environment in the simulator service. None of them touches the real arm."""


import time
from typing import Annotated, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import Field

from roarm_lab import DEFAULT_TASK
from roarm_lab.control import rules
from roarm_lab.control.lab import Lab
from roarm_lab.mcp_server.follow import follow
from roarm_lab.mcp_server.translate import ACT, READ, STOP, image_reply, tool, within

ROBOT = "roarm_m3"
Camera = Annotated[Literal["iso", "front", "side", "top", "near"], Field(
    description="iso: three-quarter view from the front left; front: from +x; side: from -y; top: from above; "
                "near: close-up of the table in front of the arm (lift)")]
JointValues = Annotated[list[float] | dict[str, float], Field(
    description="rad: one value per arm joint [base, shoulder, elbow, wrist, roll], or a map of some, "
                "e.g. {\"base\": 0.5}")]
Position = Annotated[list[float], Field(min_length=3, max_length=3, description="[x, y, z] in m, robot base frame "
                                        "(x forward, y left, z up)")]
Target = Annotated[list[float] | None, Field(min_length=3, max_length=3, description="the task's goal [x, y, z] in m, "
                                             "base frame (the hand's for reach, the cube's for lift); null keeps it")]
PolicyRef = Annotated[str | None, Field(description="a run id (list_runs), a training job id, or an exported/ "
                                                    "folder inside the runs folder")]
Task = Annotated[str, Field(description="a registered task id (list_tasks lists them)")]
Steps = Annotated[int, within(rules.SETTLE_STEPS, "control steps to simulate (or wait, in real time) before "
                              "answering; 30 = 1 s")]


def register(mcp: MCPServer, lab: Lab) -> None:
    async def thread(fn, *args):
        return await anyio.to_thread.run_sync(lambda: fn(*args))

    @tool(mcp, ACT)
    def start_sim(task: Task = DEFAULT_TASK,
                  headless: Annotated[bool, Field(description="false opens MuJoCo's viewer window (needs a "
                                                  "display)")] = True,
                  realtime: Annotated[bool, Field(description="true: steps itself at 30 Hz like the real arm; "
                                                  "false: advances only when tools step it")] = False,
                  seed: Annotated[int, within(rules.SEED, "random seed of the environment")] = 0,
                  randomize: Annotated[bool, Field(description="domain randomization on (masses, gains, friction, "
                                                   "latency)")] = False):
        """Start the simulator with one interactive environment of a task (5-20 s). One at a time; never touches
        the real arm."""
        from roarm_lab.control.training import validate_task

        validate_task(task)
        spec = lab.sim.start(task, headless, realtime, seed, randomize)["spec"]
        state = lab.sim.state()
        return {"task": spec["task"], "realtime": spec["realtime"], "control_period_s": spec["control_period_s"],
                "joints": lab.sim.arm_names, "lower_rad": [round(v, 3) for v in spec["action"]["lower"]],
                "upper_rad": [round(v, 3) for v in spec["action"]["upper"]],
                "observation": [t["name"] for t in spec["observation"]["policy"]], "hand_m": state.hand_m,
                "target_m": state.target_m, "error_m": state.error_m, "pid": lab.sim.proc.pid}

    @tool(mcp, STOP)
    def stop_sim():
        """Stop the simulator: its process exits and the scene is gone (a policy run ends with it)."""
        was = lab.sim.stop()
        return {"done": was, "message": "simulator stopped" if was else "no simulator was running"}

    @tool(mcp, ACT)
    def reset_sim(target: Target = None):
        """Put the simulated arm back at its home pose (a running policy ends); optionally a new hand target."""
        return lab.sim.reset(target)

    @tool(mcp, ACT)
    def set_target(target: Position):
        """Move the task's goal (the green sphere); refused with the nearest reachable point if out of reach."""
        return lab.sim.set_target(target)

    def robot_info() -> dict:
        from roarm_lab.assets.joint_table import BASE_HEIGHT_M, JOINTS, TCP_FRAME
        from roarm_lab.registry import registered_tasks

        return {"name": ROBOT, "description": "Waveshare RoArm-M3: 5 arm joints and a gripper (bus servos)",
                "joints": [{"name": j.short, "lower_rad": j.lower, "upper_rad": j.upper, "home_rad": j.home}
                           for j in JOINTS], "tcp_frame": TCP_FRAME, "base_height_m": BASE_HEIGHT_M,
                "tasks": registered_tasks(), "loaded_in_sim": lab.sim.running()}

    @tool(mcp, READ)
    def list_tasks():
        """The tasks to train: what each is, its success definition, what it reports, its defaults (envs,
        iterations) and whether its policies can run on the real arm."""
        return {"tasks": lab.tasks()}

    @tool(mcp, READ)
    def list_robots():
        """The robots this lab models (the RoArm-M3): joints, limits (rad), home pose, tasks."""
        return {"robots": [robot_info()]}

    @tool(mcp, READ)
    def load_robot(name: Annotated[Literal["roarm_m3"], Field(description="robot name from list_robots")],
                   usd_path: Annotated[str | None, Field(
                       description="a .usd/.usda/.usdc/.usdz file inside the project folder (relative to it): "
                                   "its joints, limits (rad) and bodies, compared with the joint table")] = None):
        """Describe a robot by name, or check a USD of it against its joint table. Loads nothing: start_sim
        loads its task's robot."""
        if usd_path is not None:
            from roarm_lab.control.robots import inspect_robot_usd

            return {"name": name, **inspect_robot_usd(lab.paths, usd_path)}
        return robot_info()

    @tool(mcp, READ)
    def get_joint_state():
        """The simulated arm now: joint positions, targets and goals (rad), hand, target and error (m)."""
        return lab.sim.state()

    @tool(mcp, ACT)
    def set_joint_targets(targets: JointValues, steps: Steps = 30):
        """Hold the arm joints at these positions (rad), clamped to the joint box (the result names clamped
        joints), and let them move. A 1 rad move takes about 15 steps plus settling."""
        return lab.sim.move(targets, steps, relative=False)

    @tool(mcp, ACT)
    def apply_action(joints_delta: Annotated[list[float] | dict[str, float], Field(
                         description="rad to add to each arm joint's target: a list, or a map by short name")],
                     steps: Steps = 30):
        """Move the simulated joints by a relative amount (rad) from their current targets; clamped to the box."""
        return lab.sim.move(joints_delta, steps, relative=True)

    @tool(mcp, READ)
    def capture_observation(critic: Annotated[bool, Field(description="also the critic's privileged "
                                                          "terms")] = False):
        """The observation the policy sees now, by term (names and order of policy.json), 4 decimals."""
        reply = lab.sim.call("observation")
        groups = reply["observation"]
        return {group: {name: [round(v, 4) for v in values] for name, values in groups[group]["terms"].items()}
                for group in groups if group == "policy" or critic}

    @tool(mcp, READ)
    def policy_infer(policy: PolicyRef,
                     observation: Annotated[list[float] | dict[str, list[float]] | None, Field(
                         description="a flat observation, or a map of its terms; null: capture it from the "
                                     "simulator")] = None):
        """Run an exported policy once on an observation: its raw action and the joint targets it implies.
        Moves nothing."""
        return lab.infer(policy, observation)

    @tool(mcp, ACT)
    def rollout_capture(policy: PolicyRef,
                        episodes: Annotated[int, within(rules.ROLLOUT_EPISODES, "held-out episodes, 3 s each")] = 8,
                        randomize: Annotated[bool, Field(description="domain randomization on")] = False):
        """Record held-out episodes of a policy to npz files (play.py's rollout format) and score them."""
        import secrets

        name = f"rollouts-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        reply = lab.sim.call("record", policy=lab.policy_source(policy, False), episodes=episodes, randomize=randomize,
                             name=name, timeout_ms=120000)["record"]
        m = reply["metrics"]
        return {"dir": reply["dir"], "episodes": reply["episodes"], "success_rate": m["success_rate"],
                "mean_final_error_m": round(m["mean_final_error_m"], 4)}

    @tool(mcp, READ)
    def render_sim(camera: Camera = "iso",
                   width: Annotated[int, within(rules.RENDER_WIDTH, "image width, pixels")] = 640,
                   height: Annotated[int, within(rules.RENDER_HEIGHT, "image height, pixels")] = 480):
        """A PNG of the simulated scene; the green sphere is the hand target."""
        reply = lab.sim.call("render", camera=camera, width=width, height=height)
        state = lab.sim.state()
        return image_reply(reply["png"], {"camera": camera, "step": state.step, "hand_m": state.hand_m,
                                          "target_m": state.target_m, "error_cm": round(100 * state.error_m, 1)})

    @tool(mcp, ACT)
    async def run_policy_in_sim(ctx: Context, policy: PolicyRef = None, target: Target = None,
                                max_steps: Annotated[int, within(rules.POLICY_STEPS, "control steps at most "
                                                                 "(30 per simulated second)")] = 300,
                                use_gateway: Annotated[bool, Field(description="take actions from the running "
                                                                   "policy gateway (start_gateway)")] = False,
                                until_reached: Annotated[bool, Field(description="end once the task's success "
                                                                     "holds (reach: the hand within 2 cm)")] = True):
        """Run an exported policy closed-loop in the simulator toward the task's goal. Stepped: waits up to 20 s
        with progress, then answers with the state so far. Real time: answers at once. Either way the result's
        run_id works with wait_for_job and stop_policy; cancelling this call stops the run."""
        source = await thread(lab.policy_source, policy, use_gateway)
        started = await thread(lab.sim.run_policy, source, target, max_steps, until_reached)
        if lab.sim.spec and lab.sim.spec.get("realtime"):
            started.next = f"running in real time: wait_for_job('{started.run_id}') or stop_policy('{started.run_id}')"
            return started
        return await follow(lab, started.run_id, rules.POLICY_WAIT_S, ctx,
                            on_cancel=lambda: lab.sim.stop_policy(started.run_id))

    @tool(mcp, STOP)
    def stop_policy(run_id: Annotated[str | None, Field(description="the run_id from run_policy_in_sim; null: "
                                                        "whatever policy runs")] = None):
        """Stop a policy running in the simulator; the arm holds where it is and the scene stays."""
        return lab.sim.stop_policy(run_id)

    @tool(mcp, ACT)
    async def render_rollout(ctx: Context, policy: PolicyRef = None, target: Target = None,
                             steps: Annotated[int, within(rules.FILM_STEPS, "control steps to film (30 = 1 s)")] = 90,
                             frames: Annotated[int, within(rules.FILM_FRAMES, "pictures in the filmstrip")] = 8,
                             camera: Camera = "iso"):
        """Film a policy run from the current state (stepped simulator): a filmstrip PNG labelled with step and
        the task's error, and a GIF written to logs/sim/films/."""
        source = await thread(lab.policy_source, policy, False)
        await ctx.report_progress(0.0, 1.0, f"filming {steps} steps")
        shot = await thread(lab.sim.film, source, target, steps, frames, camera, 320, 240)
        await ctx.report_progress(1.0, 1.0, "filmed")
        run = shot["policy"]
        return image_reply(shot["png"], {"gif": shot["gif"], "frames": shot["frames"],
                                         "steps_at": shot["steps_at"],
                                         "error_cm": [round(100 * e, 1) for e in shot["errors_m"]],
                                         "reached_step": run.get("reached_step")})
