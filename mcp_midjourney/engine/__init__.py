"""Jobs: the engine facade and the parts it composes.

engine.py (the facade: submit / press / get / wait; owns the task group and the store; the one way a job ends),
correlate.py (pure: which job an event belongs to, what it does to it), events.py (those decisions carried out
per account), scheduler.py (no I/O: slots and the line), charges.py + budget.py (the usage budget), sender.py
(one interaction and its retries), recovery.py and lookup.py (what Discord still knows when we do not),
store.py (jobs as data, indexed by every id), accounts.py (one Discord account: REST, gateway, health).
"""

from .engine import Engine
from .errors import EngineError
from .store import ButtonPress, Job, JobStore, SlashCommand

__all__ = ["ButtonPress", "Engine", "EngineError", "Job", "JobStore", "SlashCommand"]
