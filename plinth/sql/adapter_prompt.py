"""The fixed prompt format of SQL adapters: what ``cost-sql`` is trained on and asked with.

A LoRA adapter learns one prompt, so the ask loop must ask it in exactly that prompt -- not the few-shot
prompt a base model needs. The format is short on purpose (a 135M model, a small context, training on
CPU): a system turn with one instruction and the legacy CUR table's columns that questions use, the
question as the user turn, and one ```sql block as the reply::

    adapter_messages("What did EC2 cost in March 2025?")
    # [{"role": "system", "content": "Write one DuckDB SELECT ..."}, {"role": "user", "content": "What ..."}]

An adapter says which format it was trained on in its folder's data card, :data:`CARD_FILE`
(``{"plinth_task": "cost-sql", "prompt_format": "cost-sql-v1", ...}``, written beside the training set
and copied into the adapter folder by the trainer). :func:`read_prompt_format` reads it; the
``/v1/sql/ask`` route passes what it finds for an adapter to the ask loop, and every model without such
a card keeps the few-shot prompt. A format is versioned by name: a
change to :data:`SYSTEM` is a new format, and adapters trained on the old one keep their old name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plinth.llm.base import Message

__all__ = [
    "CARD_FILE",
    "COST_SQL_FORMAT",
    "COST_SQL_TASK",
    "FORMAT_KINDS",
    "SYSTEM",
    "adapter_messages",
    "assistant_reply",
    "data_card",
    "read_prompt_format",
]

COST_SQL_TASK = "cost-sql"
COST_SQL_FORMAT = "cost-sql-v1"
CARD_FILE = "plinth_task.json"
FORMAT_KINDS = {COST_SQL_FORMAT: "cur"}  # format -> the dataset kind whose table it describes

SYSTEM = """\
Write one DuckDB SELECT over the table cur (AWS Cost and Usage Report, one row per line item). \
Cost means SUM(line_item_unblended_cost). Reply with the SQL only.
Columns:
line_item_usage_start_date TIMESTAMP (daily)
line_item_usage_account_id (12-digit account)
line_item_product_code (service: AmazonEC2, AmazonS3, AWSLambda ...)
line_item_usage_type, line_item_operation, line_item_resource_id
line_item_line_item_type (Usage, Tax, Credit, Refund, Fee, RIFee ...)
line_item_usage_amount, line_item_unblended_cost, pricing_public_on_demand_cost
product_region (us-east-1 ...), product_instance_type
resource_tags_user_team, resource_tags_user_environment, resource_tags_user_application, \
resource_tags_user_owner, resource_tags_user_cost_center ('' = untagged)"""


def adapter_messages(question: str) -> list[Message]:
    """The system and user turns of :data:`COST_SQL_FORMAT` for ``question``."""
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question.strip()}]


def assistant_reply(sql: str) -> str:
    """The reply the adapter is trained to give: the query alone, in one ```sql block."""
    return f"```sql\n{sql.strip()}\n```"


def data_card(**facts: Any) -> dict[str, Any]:
    """The :data:`CARD_FILE` content for a ``cost-sql`` training set (``facts``: sizes, seeds ...)."""
    return {"plinth_task": COST_SQL_TASK, "prompt_format": COST_SQL_FORMAT, **facts}


def read_prompt_format(folder: str | Path) -> str | None:
    """The known prompt format named by the data card in an adapter ``folder``, else None (no card, an
    unreadable one, or a format this version of Plinth does not know)."""
    try:
        card = json.loads((Path(folder) / CARD_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    fmt = card.get("prompt_format") if isinstance(card, dict) else None
    return fmt if fmt in FORMAT_KINDS else None
