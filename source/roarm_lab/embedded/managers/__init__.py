"""The managers of the embedded manager-based runtime (Isaac Lab's names and semantics)."""

from roarm_lab.embedded.managers.action import ActionManager, ActionTerm
from roarm_lab.embedded.managers.base import ManagerTermBase
from roarm_lab.embedded.managers.command import CommandManager, CommandTerm
from roarm_lab.embedded.managers.curriculum import CurriculumManager
from roarm_lab.embedded.managers.event import EventManager
from roarm_lab.embedded.managers.observation import ObservationManager
from roarm_lab.embedded.managers.reward import RewardManager
from roarm_lab.embedded.managers.termination import TerminationManager

__all__ = ["ActionManager", "ActionTerm", "ManagerTermBase", "CommandManager", "CommandTerm", "CurriculumManager",
           "EventManager", "ObservationManager", "RewardManager", "TerminationManager"]
