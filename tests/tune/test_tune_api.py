"""The public API of plinth.tune is explicit and pinned: the jobs API builds on it."""

import plinth.tune


def test_all_is_pinned() -> None:
    assert sorted(plinth.tune.__all__) == [
        "BASE_LEARNING_RATE",
        "CARD_FILE",
        "CHECKPOINTS_DIR",
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
        "IGNORE_INDEX",
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
    assert all(hasattr(plinth.tune, name) for name in plinth.tune.__all__)
