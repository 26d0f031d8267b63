"""One job system for long-running work: uploaded files, a queue, worker processes, resume and cancel.

Jobs live in the control plane (:mod:`plinth.control.jobs`); a :class:`JobSupervisor` thread in the
server runs each so serving goes on: a job kind is a ``run`` plus a ``finalize`` in the server, the run in
a worker process (fine-tuning) or in a server thread next to the loaded models (evaluation).
Batches and asynchronous inference are rows of the same table over the same files, but need the
served engine, so the server runs them itself (:mod:`plinth.jobs.batch` holds their file handling).
"""

from plinth.jobs import batch, evaluation, fine_tune
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
    "batch",
    "evaluation",
    "fine_tune",
    "remove_file",
    "store_file",
]
