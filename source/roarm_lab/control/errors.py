"""The errors a face may show to its user: each message says what to do instead. Anything else is a bug."""

from __future__ import annotations


class ControlError(ValueError):
    """A request the control plane refuses or could not do; the message names the problem and the fix."""


class LimitError(ControlError):
    """A number outside its allowed range, or one job too many; the message names the key and the range."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors a caller can fix (their message says how); a face shows them, anything else is a bug."""
    from roarm_lab.control.jobs import JobError
    from roarm_lab.control.layout import PathError
    from roarm_lab.control.runs import RunError
    from roarm_lab.gateway.client import GatewayError, GatewaySpecError, GatewayTimeout
    from roarm_lab.policy import PolicyLoadError
    from roarm_lab.real.bridge import BridgeError
    from roarm_lab.rl.overrides import OverrideError
    from roarm_lab.utils.files import UnsafeFileError
    from roarm_lab.utils.services import ServiceError

    return (ControlError, PathError, RunError, JobError, ServiceError, OverrideError, GatewayError, GatewaySpecError,
            GatewayTimeout, PolicyLoadError, UnsafeFileError, BridgeError)
