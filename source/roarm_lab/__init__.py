"""RoArm Lab: an Isaac Lab task package for the Waveshare RoArm-M3 that also runs on an embedded MuJoCo runtime."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_ROOT = Path(__file__).resolve().parent

DEFAULT_TASK = "RoArm-Reach-v0"
"""The task a command or a face uses when none is named: stated here once, read by every layer."""
