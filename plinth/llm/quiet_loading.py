"""Load Hugging Face models without transformers' "Loading weights" progress bar.

transformers draws that bar on stderr for every model it loads. In ``plinth guard check`` it landed
in front of the verdict, and in the server's log at the first guarded or embedded request; a bar
means nothing for a 90 MB encoder read in a fraction of a second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["without_progress_bars"]


@contextlib.contextmanager
def without_progress_bars() -> Iterator[None]:
    """transformers' progress bars off inside the block, as they were after it."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
