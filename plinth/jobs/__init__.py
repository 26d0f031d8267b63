"""One job system for long-running work: uploaded files, a queue, worker processes, resume and cancel.

Jobs live in the control plane (:mod:`plinth.control.jobs`); a :class:`JobSupervisor` thread in the
server runs each in a worker process so serving goes on, and a job kind (fine-tuning now; batch and
evaluation, in the server process) is a ``run`` in the worker plus a ``finalize`` in the server.
"""

from plinth.jobs import evaluation, fine_tune
from plinth.jobs.context import JobContext, JobStopped
from plinth.jobs.files import Checker, FileError, remove_file, store_file
from plinth.jobs.fine_tune_request import FineTuneRequest, adapter_name
from plinth.jobs.kinds import JobKind
from plinth.jobs.supervisor import JobSupervisor

__all__ = [
    "Checker",
    "FileError",
    "FineTuneRequest",
    "JobContext",
    "JobKind",
    "JobStopped",
    "JobSupervisor",
    "adapter_name",
    "evaluation",
    "fine_tune",
    "remove_file",
    "store_file",
]
