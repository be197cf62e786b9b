"""Typed results of the control plane: what the core answers, the MCP tools' output schemas (structuredContent)
and what the panel serialises."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Done(BaseModel):
    done: bool = Field(description="whether something was done (false: there was nothing to do)")
    message: str


class RobotJoint(BaseModel):
    name: str = Field(description="short name")
    urdf_name: str
    lower_rad: float = Field(description="lower bound of the safe joint box, rad")
    upper_rad: float
    home_rad: float


class RobotInfo(BaseModel):
    name: str
    description: str
    joints: list[RobotJoint] = Field(description="all joints, root to tip (the reach task drives the first five)")
    tcp_frame: str
    base_height_m: float = Field(description="base above the table, m")
    tasks: list[str] = Field(description="registered task ids for this robot")
    urdf: str
    loaded_in_sim: bool = Field(description="a running simulator has this robot")


class RobotsResult(BaseModel):
    robots: list[RobotInfo]


class Joint(BaseModel):
    name: str = Field(description="short joint name (base, shoulder, elbow, wrist, roll)")
    position_rad: float = Field(description="measured joint position, rad")
    commanded_rad: float = Field(description="the newest joint target sent to the servo, rad")
    goal_rad: float | None = Field(None, description="held joint goal (set_joint_targets), rad; null if none")
    lower_rad: float
    upper_rad: float


class JointState(BaseModel):
    step: int = Field(description="control steps simulated since start")
    sim_time_s: float
    joints: list[Joint] = Field(description="the arm joints the policy drives, root to tip")
    gripper_rad: float | None = Field(None, description="gripper joint position, rad (not actuated by the task)")
    hand_m: list[float] = Field(description="hand (TCP) position in the robot base frame, m: x forward, y left, z up")
    target_m: list[float] = Field(description="current hand target in the base frame, m")
    error_m: float = Field(description="distance from hand to target, m")
    within_threshold: bool = Field(description="error below the task's success threshold")
    threshold_m: float
    controller: dict[str, Any] | None = Field(None, description="what drives the arm now (policy run, action)")


class SimInfo(BaseModel):
    task: str
    endpoint: str = Field(description="the simulator service's ZeroMQ endpoint (loopback)")
    realtime: bool = Field(description="true: it steps itself at the control period; false: tools step it")
    control_period_s: float
    joint_names: list[str] = Field(description="arm joints (short names), the order of every joint vector")
    lower_rad: list[float]
    upper_rad: list[float]
    observation_terms: list[dict[str, Any]] = Field(description="policy observation layout: name, start, stop, size")
    cameras: list[str]
    state: JointState
    log: str = Field(description="the simulator service's log file")
    pid: int = Field(description="the simulator service's process id")


class TargetsResult(BaseModel):
    requested_rad: list[float]
    applied_rad: list[float] = Field(description="the goals actually held, after clamping to the joint box")
    clamped: list[str] = Field(description="joints whose request was outside the box and was clamped")
    steps_simulated: int
    state: JointState
    moved_rad: list[float] = Field(description="how far each joint moved during this call, rad")


class ObservationGroup(BaseModel):
    layout: list[dict[str, Any]] = Field(description="terms in order: name, start, stop, size (as policy.json)")
    terms: dict[str, list[float]]
    vector: list[float] = Field(description="the flat observation the policy is fed")


class ObservationResult(BaseModel):
    groups: dict[str, ObservationGroup] = Field(description="'policy' is what the policy sees; 'critic' adds "
                                                "privileged terms (the hand error)")
    state: JointState


class InferResult(BaseModel):
    policy: str = Field(description="the exported policy folder used")
    observation_source: str = Field(description="'simulator' (captured now) or 'given'")
    action: list[float] = Field(description="the policy's raw output (action units of the task)")
    joint_targets_rad: list[float] = Field(description="joint targets after policy.json's action convention, "
                                           "starting from the measured pose, clamped")
    clipped: list[str] = Field(description="joints whose target was clamped to the limits")


class RolloutResult(BaseModel):
    dir: str = Field(description="folder with episode_XXXXX.npz and meta.json (play.py's rollout format)")
    episodes: int
    success_rate: float
    mean_final_error_m: float
    metrics: dict[str, Any]


class RenderInfo(BaseModel):
    camera: str
    width: int
    height: int
    step: int
    cameras: dict[str, str] = Field(description="the named cameras and what each shows")


class PolicyRunResult(BaseModel):
    run_id: str | None = Field(None, description="names the run to policy_status, wait_for_job and stop_policy")
    source: str = Field("", description="where the actions came from (local ONNX or the gateway)")
    done: bool
    stopped: str | None = Field(None, description="why it ended: reached, max_steps, stopped, policy failed ...")
    steps: int
    max_steps: int | None = None
    reached: bool = Field(False, description="the hand stayed within the success threshold for 5 steps")
    reached_step: int | None = None
    initial_error_m: float | None = None
    final_error_m: float | None = None
    min_error_m: float | None = None
    error_trace_cm: list[float] = Field(default_factory=list, description="hand error, cm, every trace_every_steps")
    trace_every_steps: int = 1
    hold_steps: int = Field(0, description="steps without an action in time (the arm held its targets)")
    target_m: list[float] = Field(default_factory=list)
    hand_m: list[float] = Field(default_factory=list)
    next: str | None = None


class TrainingPlan(BaseModel):
    """What a training will run, echoed before anything is left to chance."""

    task: str
    num_envs: int
    max_iterations: int
    from_iteration: int = 0
    env_steps: int
    expected_minutes: float = Field(description="on this machine, from its last measured training")
    estimate_basis: str
    overrides: list[str] = Field(default_factory=list)


class JobStarted(BaseModel):
    job_id: str = Field(description="wait_for_job / training_status take it; stop_training stops it")
    run_id: str = Field(description="the id to pass as run_id to training_status, evaluate_policy, export_policy")
    kind: str
    state: str
    plan: TrainingPlan | None = None
    log: str
    next: str = Field(description="what to call next")


class SweepTrial(BaseModel):
    trial: str = Field(description="Ray Tune's trial id")
    state: str = Field(description="pending, running, complete, stopped early (ASHA), interrupted or error")
    values: dict[str, Any] = Field(description="the override values this trial drew")
    success_rate: float | None = Field(None, description="training success rate at its last iteration")
    error_m: float | None = Field(None, description="the task's position error at its last iteration, m")
    env_steps: float | None = Field(None, description="samples it used")
    samples_to_target: float | None = Field(None, description="samples until its success first reached the target")
    run_id: str | None = Field(None, description="its run folder (list_runs, evaluate_policy, export_policy take it)")
    baseline: bool = Field(False, description="this trial ran the task's own values")


class SweepStatus(BaseModel):
    sweep: str = Field(description="the sweep's name (its folder in logs/sweeps/)")
    job_id: str | None
    state: str = Field(description="the job's state (running, succeeded, stopped, ...)")
    sweep_state: str | None = Field(None, description="the sweep's own: running, finished, interrupted")
    task: str | None = None
    num_samples: int | None = None
    budget_env_steps: int | None = Field(None, description="samples each trial may use")
    target: float | None = Field(None, description="the success rate samples_to_target counts to")
    trials_total: int = 0
    trials_ended: int = 0
    best_success_rate: float | None = None
    trials: list[SweepTrial] = Field(description="the newest 64 trials")
    best_overrides: str | None = Field(None, description="the best trial's values as a preset file: "
                                       "start_training(preset=...) does not take paths; train.py --preset does")
    log: str | None = None


class JobStatus(BaseModel):
    job_id: str | None
    kind: str | None
    state: str = Field(description="starting, running, succeeded, failed, stopped, lost (its supervisor ended "
                       "without recording the end: error says how), or finished/unknown for a run without a job")
    exit_code: int | None = None
    task: str | None = None
    run_id: str | None = Field(None, description="the run folder's name once it exists")
    run_dir: str | None = None
    elapsed_s: float | None = None
    iteration: int | None = Field(None, description="training iterations done")
    total_iterations: int | None = None
    eta_s: float | None = Field(None, description="estimated time left, s (from the recent iteration rate)")
    success_rate: float | None = Field(None, description="training: fraction of targets reached in recent episodes; "
                                       "evaluation: of held-out targets")
    position_error_m: float | None = None
    newest_checkpoint: str | None = None
    metrics: dict[str, Any] | None = Field(None, description="final metrics (run.json, metrics.json or the real "
                                           "run's summary.json)")
    error: str | None = Field(None, description="what went wrong, from the job's own output")
    console_tail: list[str] = Field(default_factory=list, description="last lines of the console log")
    next: str | None = Field(None, description="a suggested next step")


class RunsResult(BaseModel):
    runs: list[dict[str, Any]] = Field(description="run_id, experiment, task, checkpoints, exported, success_rate, "
                                       "job_id and job_state")
    active_jobs: list[dict[str, Any]]


class ExportResult(BaseModel):
    run_id: str
    checkpoint: str
    export_dir: str
    up_to_date: bool = Field(description="true: the export is newer than the checkpoint, nothing was started")
    job_id: str | None = Field(None, description="the export job (play.py) if one was started; poll training_status")
    files: list[str]


class GatewayInfo(BaseModel):
    running: bool
    endpoint: str | None = None
    policy: str | None = None
    pid: int | None = None
    spec: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    log: str | None = None


class RealArmStatus(BaseModel):
    motion_allowed: bool = Field(description="the server was started with --allow-real-arm")
    robot: str = Field(description="serial, http or emu (the firmware emulator)")
    port: str | None
    port_present: bool | None = Field(None, description="the serial port exists (serial robot)")
    stop_latched: bool = Field(description="emergency stop file present: real-arm runs are refused until a person "
                               "deletes it after checking the arm")
    stop_file: str
    active_job: dict[str, Any] | None = None
    last_summary: dict[str, Any] | None = None
    probe: dict[str, Any] | None = Field(None, description="one feedback frame read from the arm (probe=true)")


class RealRunResult(BaseModel):
    dry_run: bool
    started: bool = Field(description="a real-arm run started as a job (false: nothing was opened or sent)")
    plan: dict[str, Any] = Field(description="policy, robot, start pose, targets, duration, limits")
    job_id: str | None = Field(None, description="the real-arm run job; poll training_status; emergency_stop stops it")
    message: str


class Progress(BaseModel):
    """Where a job or a simulator policy run stands (what wait_for_job reports and returns)."""

    ref: str
    kind: str
    done: bool
    fraction: float | None = None
    message: str
    result: dict[str, Any] = Field(default_factory=dict)


class EstopResult(BaseModel):
    stop_file: str | None = Field(None, description="written (latched): any running bridge torque-holds and exits; "
                                  "new real runs are refused until a person deletes it")
    latched: bool = False
    real_jobs_signalled: list[str]
    sim_policy_stopped: bool
    message: str


class EnvReport(BaseModel):
    checks: list[dict[str, str]] = Field(description="name, status (ok, missing, info, error), detail")
    table: str
    report_file: str
