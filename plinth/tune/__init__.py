"""Fine-tuning: LoRA adapters trained with PEFT from a tenant's JSONL data, served by Plinth at once.

The public API (``__all__``) is what the jobs API and ``plinth tune`` build on::

    problems = validate_training_file(path)                 # [LineProblem(line, message)]
    job = TuneJob(model="smollm2-135m-instruct", training_file=path, out=folder,
                  hyperparameters=Hyperparameters(n_epochs=3, r=8))
    result = train(job, on_event=events.append, should_cancel=stop.is_set)
"""

from plinth.tune.card import CARD_FILE, TrainingCard, read_card
from plinth.tune.data import (
    ChatExample,
    ChatTurn,
    CompletionExample,
    Example,
    LineProblem,
    TrainingFileError,
    load_training_file,
    validate_training_file,
)
from plinth.tune.encoding import IGNORE_INDEX, EncodedExample, TemplateError, encode_example
from plinth.tune.events import (
    CheckpointSaved,
    EpochValidated,
    EventSink,
    StepMetrics,
    TrainingFinished,
    TrainingStarted,
    TuneEvent,
    event_record,
)
from plinth.tune.hyperparams import BASE_LEARNING_RATE, HyperparameterError, Hyperparameters
from plinth.tune.trainer import CHECKPOINTS_DIR, TrainingCancelled, TuneJob, TuneResult, train

__all__ = [
    "BASE_LEARNING_RATE",
    "CARD_FILE",
    "CHECKPOINTS_DIR",
    "IGNORE_INDEX",
    "ChatExample",
    "ChatTurn",
    "CheckpointSaved",
    "CompletionExample",
    "EncodedExample",
    "EpochValidated",
    "EventSink",
    "Example",
    "HyperparameterError",
    "Hyperparameters",
    "LineProblem",
    "StepMetrics",
    "TemplateError",
    "TrainingCancelled",
    "TrainingCard",
    "TrainingFileError",
    "TrainingFinished",
    "TrainingStarted",
    "TuneEvent",
    "TuneJob",
    "TuneResult",
    "encode_example",
    "event_record",
    "load_training_file",
    "read_card",
    "train",
    "validate_training_file",
]
