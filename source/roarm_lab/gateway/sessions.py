"""Client sessions of the gateway: bound to an unguessable token, bounded in number and idle time.

A ZeroMQ routing id is no credential: a peer can set any id, and the server's own ids are a counter. So
``hello`` opens a session with a random 128-bit token, and every request that touches client state must
carry it and arrive from the identity that opened it. One identity holds at most one session (a new
``hello`` replaces it); beyond ``max_sessions`` the least recently used is dropped, and sessions idle for
``idle_s`` are pruned, so a flood of identities cannot grow the server's memory.
"""

from __future__ import annotations

import collections
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Iterator

from roarm_lab.policy import ClientTargets
from roarm_lab.gateway.stats import ClientStats

TOKEN_BYTES = 16


@dataclass
class Session:
    token: bytes
    identity: bytes
    label: str
    """What stats and the event log show ("s17"): names the session without being able to claim it."""
    name: str
    last_used: float
    targets: ClientTargets = field(default_factory=ClientTargets)
    stats: ClientStats = field(default_factory=ClientStats)
    in_flight: int = 0
    joint_info: bool = False
    """Its hello asked for ``joint_names`` and ``action_scale`` in every infer reply."""
    config_hash: str | None = None
    """The last config hash it sent (a change is a ``client_hash`` event)."""


class SessionTable:
    def __init__(self, max_sessions: int = 1024, idle_s: float = 300.0):
        self.max_sessions = max_sessions
        self.idle_s = idle_s
        self._by_token: collections.OrderedDict[bytes, Session] = collections.OrderedDict()  # LRU order
        self._by_identity: dict[bytes, bytes] = {}
        self._labels = itertools.count(1)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._by_token)

    def open(self, identity: bytes, name: str, now: float) -> Session:
        """A new session for ``identity`` (its previous one, if any, is closed)."""
        old = self._by_identity.pop(identity, None)
        if old is not None:
            self._by_token.pop(old, None)
        while len(self._by_token) >= self.max_sessions:
            self._drop(next(iter(self._by_token)))
            self.evicted += 1
        session = Session(secrets.token_bytes(TOKEN_BYTES), identity, f"s{next(self._labels)}", name, now)
        self._by_token[session.token] = session
        self._by_identity[identity] = session.token
        return session

    def get(self, token: object, identity: bytes, now: float) -> Session | None:
        """The session of ``token`` if ``identity`` opened it, else None."""
        session = self._by_token.get(token) if isinstance(token, bytes) else None
        if session is None or session.identity != identity:
            return None
        session.last_used = now
        self._by_token.move_to_end(token)
        return session

    def prune(self, now: float) -> int:
        """Drop the sessions idle for ``idle_s`` (oldest first, so this stops at the first live one)."""
        dropped = 0
        while self._by_token:
            token, session = next(iter(self._by_token.items()))
            if now - session.last_used < self.idle_s or session.in_flight:
                break
            self._drop(token)
            dropped += 1
        return dropped

    def _drop(self, token: bytes) -> None:
        session = self._by_token.pop(token)
        if self._by_identity.get(session.identity) == token:
            del self._by_identity[session.identity]

    def recent(self) -> Iterator[tuple[str, str, ClientStats]]:
        """(label, name, stats), most recently used first."""
        return ((s.label, s.name, s.stats) for s in reversed(self._by_token.values()))
