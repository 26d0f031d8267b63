"""An older source of one of Plinth's C++ operators, built beside the current one under the namespace
``plinth_against``, so that a benchmark times both in one process, round by round. On a shared host the
same build's speed moves more from one process to the next than a kernel change does, so a change is
measured alternated in one process::

    git show HEAD~1:plinth/engine/csrc/bf16_linear.cpp > /tmp/old.cpp
    older = build_against(Path("/tmp/old.cpp"))      # torch.ops.plinth_against
    older.bf16_linear(x, packed)
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from plinth.engine import native

CSRC = Path(native.__file__).parent / "csrc"


def build_against(source: Path) -> Any:
    """``source`` compiled with native.py's flags, its operators registered as ``torch.ops.plinth_against``
    (its headers are the current ones in ``plinth/engine/csrc``)."""
    from torch.utils.cpp_extension import load

    text = source.read_text()
    for kind in ("TORCH_LIBRARY_FRAGMENT(plinth, m)", "TORCH_LIBRARY_IMPL(plinth, CPU, m)"):
        text = text.replace(kind, kind.replace("plinth", "plinth_against"))
    for header in sorted(CSRC.glob("*.h")):
        text = text.replace(f'#include "{header.name}"', f'#include "{header}"')
    folder = Path(tempfile.gettempdir()) / f"plinth-against-{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    folder.mkdir(exist_ok=True)
    (folder / "against.cpp").write_text(text)
    load(name="plinth_against", sources=[str(folder / "against.cpp")], extra_cflags=list(native.CFLAGS),
         extra_ldflags=["-fopenmp"], build_directory=str(folder), is_python_module=False)  # fmt: skip
    return torch.ops.plinth_against
