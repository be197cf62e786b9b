"""The omni.ui window (Isaac Sim only; never imported where omni.ui is missing). A thin view of the controller:
labels and a progress bar redrawn when its state changes, buttons that start its actions as coroutines.
The live view of the arm is Isaac Sim's own viewport on the open stage.
"""

from __future__ import annotations

from typing import Any, Callable

import omni.ui as ui

from roarm_lab_panel.controller import ACTIVE, PanelController

ESTOP_STYLE = {"Button": {"background_color": 0xFF2A2AD0, "border_radius": 8, "margin": 4},
               "Button.Label": {"color": 0xFFFFFFFF, "font_size": 20}}


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def _cm(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f} cm"


class PanelWindow:
    def __init__(self, controller: PanelController, run: Callable[[Any], Any]):
        self.c, self.run = controller, run
        self._seen = -1
        self.window = ui.Window("RoArm Lab", width=420, height=640)
        self.progress = ui.SimpleFloatModel(0.0)
        self.iterations, self.envs = ui.SimpleIntModel(300), ui.SimpleIntModel(1024)
        self.target = [ui.SimpleFloatModel(v) for v in (0.25, 0.05, 0.15)]
        with self.window.frame:
            with ui.VStack(spacing=6):
                self.link = ui.Label("connecting…")
                ui.Button("EMERGENCY STOP", height=48, style=ESTOP_STYLE, clicked_fn=lambda: self._do("emergency_stop"))
                with ui.CollapsableFrame("Training"):
                    with ui.VStack(spacing=4):
                        with ui.HStack(height=22):
                            ui.Label("iterations", width=80)
                            ui.IntField(self.iterations)
                            ui.Label("envs", width=40)
                            ui.IntField(self.envs)
                        with ui.HStack(height=28):
                            ui.Button("Start training", clicked_fn=self._train)
                            ui.Button("Stop", clicked_fn=self._stop_job)
                        ui.ProgressBar(self.progress, height=18)
                        self.job = ui.Label("no jobs yet", word_wrap=True)
                with ui.CollapsableFrame("Simulator and policy"):
                    with ui.VStack(spacing=4):
                        with ui.HStack(height=28):
                            ui.Button("Start simulator", clicked_fn=lambda: self._do("start_sim"))
                            ui.Button("Stop simulator", clicked_fn=lambda: self._do("stop_sim"))
                        with ui.HStack(height=22):
                            ui.Label("target x y z (m)", width=110)
                            for model in self.target:
                                ui.FloatField(model)
                        with ui.HStack(height=28):
                            ui.Button("Export newest", clicked_fn=self._export)
                            ui.Button("Play", clicked_fn=self._play)
                        self.sim = ui.Label("simulator stopped", word_wrap=True)
                with ui.CollapsableFrame("Gateway and real arm"):
                    self.services = ui.Label("", word_wrap=True)
                self.message = ui.Label("", word_wrap=True)

    # ------------------------------------------------------------------ buttons
    def _do(self, name: str, **fields: Any) -> None:
        self.run(self.c.act(name, **fields))

    def _train(self) -> None:
        self._do("start_training", max_iterations=self.iterations.as_int, num_envs=self.envs.as_int)

    def _stop_job(self) -> None:
        job = self.c.focus_job()
        if job and job.get("state") in ACTIVE:
            self._do("stop_job", job_id=job["job_id"])

    def _export(self) -> None:
        job = next((j for j in self.c.jobs if j.get("kind") == "train" and j.get("run_id")), None)
        if job:
            self._do("export", run_id=job["run_id"])

    def _play(self) -> None:
        run = self.c.newest_exported_run()
        if run:
            self._do("play", policy=run, target=[m.as_float for m in self.target])

    # ------------------------------------------------------------------ redraw
    def refresh(self) -> None:
        if self.c.version == self._seen:
            return
        self._seen = self.c.version
        self.link.text = "connected to " + self.c.client.url if self.c.connected else (self.c.error or "connecting…")
        job = self.c.focus_job()
        if job:
            it, total = job.get("iteration") or 0, job.get("total_iterations") or 0
            self.progress.set_value(it / total if total else (1.0 if job.get("state") == "succeeded" else 0.0))
            self.job.text = (f"{job.get('kind')} {job.get('run_id') or job.get('job_id')}: {job.get('state')}  "
                             f"iteration {it}/{total or '?'}  ETA {job.get('eta_s') or '–'} s  success "
                             f"{_pct(job.get('success_rate'))}  error {_cm(job.get('position_error_m'))}"
                             + (f"\n{job['error']}" if job.get("error") else ""))
        sim = self.c.sim()
        s = sim.get("state") or {}
        self.sim.text = (f"{sim.get('task')} step {s.get('step')}  hand error {_cm(s.get('error_m'))}" if sim.get("running")
                         else "simulator stopped" + (" unexpectedly: press Start simulator" if sim.get("died") else ""))
        state = self.c.state or {}
        gw, real = state.get("gateway") or {}, state.get("real") or {}
        lat = gw.get("latency_us") or {}
        self.services.text = (
            (f"gateway {gw.get('endpoint')}: p50 {lat.get('p50', 0) / 1000:.2f} ms, p99 {lat.get('p99', 0) / 1000:.2f} ms, "
             f"misses {gw.get('deadline_misses')}, clients {len(gw.get('clients') or [])}" if gw.get("running")
             else "gateway not running")
            + f"\nreal arm: {'motion allowed' if real.get('motion_allowed') else 'dry runs only'}, stop "
            + ("LATCHED" if real.get("stop_latched") else "clear"))
        if self.c.messages:
            _, text, ok = self.c.messages[-1]
            self.message.text = ("" if ok else "error: ") + text

    def destroy(self) -> None:
        self.window.destroy()
        self.window = None
