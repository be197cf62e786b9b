"""The simulator service: a ZeroMQ ROUTER on loopback, one thread that owns the environment.

Requests and (in real-time mode) control steps run on the same thread, so the environment and the OpenGL
context are only ever touched by it. In real-time mode the loop waits on the socket until the next control
tick; a tick that is late is not made up (simulated time slips rather than racing). A long request
(``record``) pauses the real-time clock while it runs.

Access (docs/sim_service.md): every request but ``hello`` and ``ping`` must carry the service's secret; the
environment belongs to the client that started it (or, one built at launch, to the first client that drives
it), and only that client may change or end it; anyone with the secret may read it. Frames over the
gateway's ``MAX_FRAME_BYTES`` make ZeroMQ drop the connection before it buffers them. The socket is the
gateway's in two more ways: routing ids are seeded (a peer that claims the id libzmq would generate next
aborts an unseeded ROUTER) and ROUTER_HANDOVER is on (with it off, libzmq keeps every duplicate-id
connection and what it sent).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import zmq

from roarm_lab import DEFAULT_TASK
from roarm_lab.gateway.admin import token_matches
from roarm_lab.gateway.protocol import MAX_FRAME_BYTES
from roarm_lab.gateway.server import _seed_routing_ids, is_loopback
from roarm_lab.runtime_choice import RuntimeUnavailable
from roarm_lab.sim_service.render import CAMERAS, RenderError
from roarm_lab.control.rules import face_task_configs
from roarm_lab.rl.overrides import OverrideError
from roarm_lab.sim_service import protocol as p
from roarm_lab.sim_service.protocol import ProtocolError, SimErrorCode
from roarm_lab.sim_service.secret import SECRET_ENV, check_secret
from roarm_lab.utils.io import atomic_write_bytes

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
MAX_STEPS = 20000
MAX_RECORD_EPISODES = 256
RCVHWM = 8
"""Frames ZeroMQ queues per peer before it stops reading from it (a SimClient has one request in flight)."""
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _camera(msg: dict) -> str:
    camera = p.text(msg, "camera", "iso", 40)
    if camera not in CAMERAS:
        raise ProtocolError(SimErrorCode.BAD_REQUEST, f"unknown camera '{camera}'; cameras: {sorted(CAMERAS)}")
    return camera


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


@dataclass(frozen=True)
class Owner:
    """The client an environment belongs to: its id (never shown to others) and the name it gave."""

    client: str
    name: str
    since: float


class SimServer:
    def __init__(self, bind: str = "tcp://127.0.0.1:5560", *, secret: str, secret_source: str | None = None,
                 policy_roots: list[Path] | None = None, data_dir: Path = Path("logs/sim"),
                 allow_shutdown: bool = True, session_factory: Callable[..., Any] | None = None):
        """``secret``: what every request but hello/ping must carry; ``secret_source``: where a client finds it
        (``env:NAME`` or ``file:PATH``, as ``roarm_lab.sim_service.secret.service_secret`` says), for the refusal."""
        if not is_loopback(bind):
            raise ValueError(f"refusing to bind {bind}: the simulator service serves loopback only (127.0.0.1)")
        self._secret = check_secret(secret, "SimServer(secret=...)").encode()
        self.secret_source = secret_source
        self.owner: Owner | None = None
        self.policy_roots = [Path(r).resolve() for r in (policy_roots or [])]
        self.data_dir = Path(data_dir)
        self.allow_shutdown = allow_shutdown
        if session_factory is None:
            from roarm_lab.sim_service.session import SimSession as session_factory
        self._factory = session_factory
        self.session: Any = None
        _seed_routing_ids()
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
        self.socket.setsockopt(zmq.RCVHWM, RCVHWM)
        self.socket.bind(bind)
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._running = False
        self._next_tick = 0.0
        self.requests = 0
        self.refused = 0
        """Requests refused ``unauthorized`` (counted, not logged: a flood would fill the log)."""
        self.late_ticks = 0

    # ------------------------------------------------------------------ loop
    def serve_forever(self) -> None:
        self._running = True
        while self._running:
            self.serve_once()

    def serve_once(self, timeout_ms: int | None = None) -> bool:
        """One turn: wait up to ``timeout_ms`` for a request (default: until the next control tick in real
        time, else 100 ms), handle it, and take the control step when one is due. ``timeout_ms=0`` never blocks (the Kit
        extension calls it from Kit's update loop). True if a request was handled."""
        realtime = self.session is not None and self.session.realtime
        background = self.session is not None and self.session.stepping_in_background()
        if timeout_ms is None:
            timeout_ms = (0 if background else max(0, int((self._next_tick - time.monotonic()) * 1000)) if realtime
                          else 100)
        handled = bool(self.socket.poll(timeout_ms))
        if handled:
            self._handle(self.socket.recv_multipart())
        if realtime and self.session is not None and time.monotonic() >= self._next_tick:
            self._tick()
        elif background and self.session is not None and self.session.stepping_in_background():
            self._tick()  # a stepped run in the background: one step per turn, requests in between
        if self.session is not None:
            self.session.refresh_view()
        return handled

    def _tick(self) -> None:
        try:
            self.session.tick()
        except Exception:
            log.exception("control step failed")
        now = time.monotonic()
        self._next_tick += self.session.dt if self.session is not None else 0.0
        if self._next_tick < now:  # late: start the schedule again rather than burst
            self.late_ticks += 1
            self._next_tick = now + (self.session.dt if self.session is not None else 0.0)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        self.socket.close(linger=0)
        self.ctx.term()

    # ------------------------------------------------------------------ requests
    def _handle(self, frames: list[bytes]) -> None:
        # DEALER: [id, payload]; REQ: [id, b"", payload]. Anything else is dropped unanswered: a reply would echo
        # an envelope of the peer's choosing
        if not 2 <= len(frames) <= 3 or (len(frames) == 3 and frames[1]):
            return
        envelope, payload = frames[:-1], frames[-1]
        request_id = None
        try:
            msg = p.decode(payload)
            request_id = msg.get("id")
            self.requests += 1
            kind = msg["type"]
            if kind not in p.OPEN_TYPES and not self._authenticated(msg):
                self.refused += 1
                raise ProtocolError(SimErrorCode.UNAUTHORIZED, self._how_to_authenticate(kind))
            claim = self._check_owner(msg) if kind in p.OWNER_TYPES and self.session is not None else None
            reply = getattr(self, f"_on_{kind}")(msg)
            if claim is not None and self.session is not None:  # a launch environment: the first driver owns it
                self.owner = claim
            reply = {"ok": True, "type": kind, "id": request_id, **reply}
        except ProtocolError as err:
            reply = p.error_reply(err.code, err.message, request_id)
        except Exception as err:  # never a traceback on the wire; the service's log has it
            log.exception("request failed")
            reply = p.error_reply(SimErrorCode.INTERNAL, f"internal error ({type(err).__name__}: {err})", request_id)
        try:
            frame = p.encode(reply)
        except Exception:  # a value no encoder takes must not end the serving loop: a fixed reply instead
            log.exception("reply could not be encoded")
            frame = p.encode(p.error_reply(SimErrorCode.INTERNAL, "internal error (the reply could not be encoded)"))
        try:
            self.socket.send_multipart([*envelope, frame], zmq.NOBLOCK)
        except zmq.Again:
            log.warning("reply dropped: the client is gone")

    # ------------------------------------------------------------------ access
    def _authenticated(self, msg: dict) -> bool:
        return token_matches(self._secret, msg.get("secret"))

    def _how_to_authenticate(self, kind: str) -> str:
        source = self.secret_source or ""
        where = (f"it is in the file {source[5:]}" if source.startswith("file:") else
                 f"the process that started this service handed it over in ${SECRET_ENV}" if source.startswith("env:")
                 else "ask whoever started this service")
        return f"'{kind}' needs this simulator's secret: {where}; send it as 'secret' (SimClient(endpoint, secret=...))"

    def _client(self, msg: dict) -> Owner:
        client = msg.get("client")
        if not isinstance(client, str) or not CLIENT_ID.match(client):
            raise ProtocolError(SimErrorCode.BAD_REQUEST, f"'{msg['type']}' needs 'client': this client's id, 16-128 "
                                "letters, digits, '_' or '-' (SimClient sends a random one)")
        name = "".join(c for c in (p.text(msg, "client_name", None, 80) or "") if c.isprintable()) or "unnamed"
        return Owner(client, name, time.time())

    def _check_owner(self, msg: dict) -> Owner | None:
        """Refuse (``forbidden``) a request from another client than the owner; the claim if there is no owner."""
        you = self._client(msg)
        if self.owner is None:
            return you
        if not hmac.compare_digest(self.owner.client.encode(), you.client.encode()):
            since = time.strftime("%H:%M:%S", time.localtime(self.owner.since))
            raise ProtocolError(SimErrorCode.FORBIDDEN, f"'{msg['type']}' refused: this environment belongs to client "
                                f"'{self.owner.name}' (since {since}); only it may change or end it. Read it (status, "
                                "joint_state, observation, render), or start your own on another service")
        return None

    def _owner_view(self, msg: dict) -> dict[str, Any] | None:
        if self.owner is None:
            return None
        client = msg.get("client")
        yours = isinstance(client, str) and hmac.compare_digest(self.owner.client.encode(), client.encode())
        return {"name": self.owner.name, "since": self.owner.since, "yours": yours}

    def _need(self) -> Any:
        if self.session is None:
            raise ProtocolError(SimErrorCode.NOT_STARTED, "no simulation is running: send start first")
        return self.session

    def _on_hello(self, msg: dict) -> dict:
        if msg.get("protocol_version") not in p.SUPPORTED_VERSIONS:
            raise ProtocolError(SimErrorCode.UNSUPPORTED_VERSION, f"protocol version {msg.get('protocol_version')!r} "
                                f"is not supported; this service speaks {list(p.SUPPORTED_VERSIONS)}")
        return {"protocol_version": p.PROTOCOL_VERSION, "authenticated": self._authenticated(msg),
                "spec": None if self.session is None else self.session.spec()}

    def _on_ping(self, msg: dict) -> dict:
        return {"time": time.time()}

    def _on_status(self, msg: dict) -> dict:
        s = self.session
        return {"started": s is not None, "requests": self.requests, "refused": self.refused,
                "late_ticks": self.late_ticks, "owner": self._owner_view(msg), "spec": None if s is None else s.spec(),
                "state": None if s is None else s.joint_state(),
                "policy": None if s is None else s.policy_status()}

    def start(self, task: str, *, seed: int = 0, randomize: bool = False, realtime: bool = False,
              overrides: list[str] | None = None, viewer: bool = False, owner: Owner | None = None) -> Any:
        """Build the environment (a second start while one runs is refused); ``owner`` None (``--task`` at launch):
        the first client that drives it owns it."""
        if self.session is not None:
            raise ProtocolError(SimErrorCode.BUSY, f"a simulation of {self.session.task} is running: send stop first")
        try:
            self.session = self._factory(task, seed=seed, randomize=randomize, overrides=overrides, realtime=realtime,
                                         viewer=viewer)
        except ProtocolError:
            raise
        except RenderError as err:
            raise ProtocolError(SimErrorCode.RENDER_FAILED, str(err)) from None
        except (ValueError, KeyError, RuntimeUnavailable) as err:  # unknown task, a bad override (the parser's
            raise ProtocolError(SimErrorCode.START_FAILED, str(err)) from None  # message), a missing runtime
        self._next_tick = time.monotonic()
        self.owner = owner
        return self.session

    def _on_start(self, msg: dict) -> dict:
        owner = self._client(msg)
        overrides = msg.get("overrides") or []
        task = p.text(msg, "task", DEFAULT_TASK, 200)
        try:  # a request from the wire gets the control plane's safe subset (the command line keeps full power)
            face_task_configs(task, overrides, prefixes=("env",))
        except (OverrideError, ValueError) as err:
            raise ProtocolError(SimErrorCode.START_FAILED, str(err)) from None
        session = self.start(task, seed=p.integer(msg, "seed", 0, 0, 2**31 - 1),
                             randomize=bool(msg.get("randomize", False)), realtime=bool(msg.get("realtime", False)),
                             overrides=overrides, viewer=bool(msg.get("viewer", False)), owner=owner)
        return {"spec": session.spec(), "state": session.joint_state()}

    def _on_stop(self, msg: dict) -> dict:
        was = self.session is not None
        if was:
            self.session.close()
            self.session = None
        self.owner = None
        return {"stopped": was}

    def _on_shutdown(self, msg: dict) -> dict:
        if not self.allow_shutdown:
            raise ProtocolError(SimErrorCode.FORBIDDEN, "shutdown is disabled on this service")
        self._running = False
        return {}

    def _on_reset(self, msg: dict) -> dict:
        return {"state": self._need().reset(p.vector(msg, "target", 3, required=False))}

    def _on_set_target(self, msg: dict) -> dict:
        return {"state": self._need().set_target(p.vector(msg, "target", 3))}

    def _on_step(self, msg: dict) -> dict:
        return {"state": self._need().step(p.integer(msg, "steps", 1, 1, MAX_STEPS))}

    def _on_joint_state(self, msg: dict) -> dict:
        return {"state": self._need().joint_state()}

    def _on_observation(self, msg: dict) -> dict:
        s = self._need()
        return {"observation": s.observation(), "state": s.joint_state()}

    def _on_set_joint_targets(self, msg: dict) -> dict:
        s = self._need()
        return {"state": s.set_joint_targets(p.vector(msg, "targets", len(s.term.joint_names)))}

    def _on_act(self, msg: dict) -> dict:
        s = self._need()
        return {"state": s.act(p.vector(msg, "action", s.action_size), p.integer(msg, "steps", 1, 1, MAX_STEPS))}

    def _source(self, msg: dict) -> Any:
        from roarm_lab.sim_service.policies import open_source

        s = self._need()
        spec = msg.get("policy")
        if isinstance(spec, dict) and isinstance(spec.get("export"), str):
            path = Path(spec["export"]).resolve()
            if not _inside(path, self.policy_roots):
                raise ProtocolError(SimErrorCode.FORBIDDEN, f"policy folder {spec['export']} is outside this service's "
                                    f"policy roots {[str(r) for r in self.policy_roots]}")
            spec = {"export": str(path)}
        obs_size = sum(t["size"] for t in s.layout())
        # real time: an action must come within half a control period, or the arm holds (as on the real arm);
        # stepped, nothing waits on the clock, so a slow answer is only slow
        deadline_ms = 500.0 * s.dt if s.realtime else 1000.0
        return open_source(spec, s.task, obs_size, s.action_size, deadline_ms)

    def _on_run_policy(self, msg: dict) -> dict:
        s = self._need()
        max_steps = p.integer(msg, "max_steps", 300, 1, MAX_STEPS)
        target = p.vector(msg, "target", 3, required=False)
        s._refuse_if_running("starting another")
        result = s.run_policy(self._source(msg), target, max_steps, bool(msg.get("until_reached", True)),
                              background=bool(msg.get("background", False)))
        return {"policy": result, "state": s.joint_state()}

    def _on_stop_policy(self, msg: dict) -> dict:
        s = self._need()
        return {"policy": s.stop_policy(run_id=p.text(msg, "run_id", None, 80)), "state": s.joint_state()}

    def _on_film(self, msg: dict) -> dict:
        """A policy rollout from the current state as a filmstrip PNG (returned) and a GIF (written under the
        data folder's ``films/``)."""
        from roarm_lab.sim_service import film

        s = self._need()
        s._refuse_if_running("filming a rollout")
        name = p.text(msg, "name", None, 80)
        if name is None or not NAME.match(name):
            raise ProtocolError(SimErrorCode.BAD_REQUEST, "'name' (the GIF's file name) must be 1-80 letters, digits, "
                                "'_', '-' or '.'")
        camera = _camera(msg)
        steps, frames = p.integer(msg, "steps", 90, 2, 3000), p.integer(msg, "frames", 8, 2, 24)
        width, height = p.integer(msg, "width", 320, 64, 640), p.integer(msg, "height", 240, 64, 480)
        source = self._source(msg)
        try:
            shot = s.film(source, p.vector(msg, "target", 3, required=False), steps, frames, camera, width, height)
        except RenderError as err:
            raise ProtocolError(SimErrorCode.RENDER_FAILED, str(err)) from None
        steps_at = [min(i * shot["every_steps"], shot["policy"]["steps"]) for i in range(len(shot["frames"]))]
        labels = [f"step {k}: {100 * e:.1f} cm" for k, e in zip(steps_at, shot["errors_m"])]
        out = self.data_dir / "films" / f"{name}.gif"
        atomic_write_bytes(out, film.gif(shot["frames"]))
        self._next_tick = time.monotonic()
        return {"png": film.filmstrip(shot["frames"], labels), "gif": str(out), "frames": len(shot["frames"]),
                "errors_m": shot["errors_m"], "steps_at": steps_at, "policy": shot["policy"],
                "state": s.joint_state()}

    def _on_record(self, msg: dict) -> dict:
        s = self._need()
        name = p.text(msg, "name", None, 80)
        if name is None or not NAME.match(name):
            raise ProtocolError(SimErrorCode.BAD_REQUEST, "'name' (the rollout folder) must be 1-80 letters, digits, "
                                "'_', '-' or '.'")
        out = self.data_dir / "rollouts" / name
        if out.exists():
            raise ProtocolError(SimErrorCode.BAD_REQUEST, f"rollout folder {out} exists already; choose another name")
        episodes = p.integer(msg, "episodes", 8, 1, MAX_RECORD_EPISODES)
        source = self._source(msg)
        result = s.record(source, episodes, bool(msg.get("randomize", False)), out)
        self._next_tick = time.monotonic()  # the real-time clock was paused while it ran
        return {"record": result}

    def _on_render(self, msg: dict) -> dict:
        s = self._need()
        camera = _camera(msg)
        width, height = p.integer(msg, "width", 640, 64, 1920), p.integer(msg, "height", 480, 64, 1080)
        try:
            png = s.render(camera, width, height)
        except RenderError as err:
            raise ProtocolError(SimErrorCode.RENDER_FAILED, str(err)) from None
        return {"png": png, "camera": camera, "width": width, "height": height,
                "cameras": {k: v.description for k, v in CAMERAS.items()}}
