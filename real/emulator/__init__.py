"""A RoArm-M3 firmware emulator: the v0.84 JSON protocol over a real pseudo-terminal and HTTP, driving a MuJoCo arm.

A driver opens ``ArmEmulator.port`` exactly like ``/dev/ttyUSB0`` (``serial.Serial(path, 115200)``) or calls
``GET http://127.0.0.1:PORT/js?json=...`` like the arm's Wi-Fi interface. Behind it runs the project's MuJoCo
model with servo-like behaviour: command latency, a slew-limited setpoint, a deadband, position servos that sag
under gravity, limp torque-off, the emergency-stop block, flow feedback at about 23 Hz, and injected faults
(garbage, torn and unpowered frames, dropped frames, a pulled USB cable, a joint reported at a finite but
implausible value, silence) so drivers can be tested without an arm.

Run it with ``python -m roarm_lab.real.emulator`` (or ``roarm-emulator``); tests use ``ArmEmulator`` in-process
or ``EmulatorProcess`` as a child process.

One module per job: ``config`` (settings and firmware facts), ``arm`` (firmware and physics), ``http`` (the Wi-Fi
interface), ``cli`` (the command), ``process`` (the command as a child process).
"""

from roarm_lab.real.emulator.arm import ArmEmulator
from roarm_lab.real.emulator.cli import main
from roarm_lab.real.emulator.config import READY_PREFIX, EmulatorConfig
from roarm_lab.real.emulator.process import EmulatorProcess

__all__ = ["ArmEmulator", "EmulatorConfig", "EmulatorProcess", "READY_PREFIX", "main"]
