"""The managers of the embedded manager-based runtime (Isaac Lab's names and semantics)."""

from roarm_lab.runtime.managers.action import ActionManager, ActionTerm
from roarm_lab.runtime.managers.base import ManagerTermBase
from roarm_lab.runtime.managers.command import CommandManager, CommandTerm
from roarm_lab.runtime.managers.curriculum import CurriculumManager
from roarm_lab.runtime.managers.event import EventManager
from roarm_lab.runtime.managers.observation import ObservationManager
from roarm_lab.runtime.managers.reward import RewardManager
from roarm_lab.runtime.managers.termination import TerminationManager

__all__ = ["ActionManager", "ActionTerm", "ManagerTermBase", "CommandManager", "CommandTerm", "CurriculumManager",
           "EventManager", "ObservationManager", "RewardManager", "TerminationManager"]
