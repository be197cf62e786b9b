"""RoArm Lab task ids. Importing this package registers every task with gymnasium."""

from roarm_lab.tasks import lift, reach  # noqa: F401
