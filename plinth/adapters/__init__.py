"""LoRA adapters per tenant: which adapters each tenant sees, on which base model, under which engine name.

The engine knows adapters by one flat name; tenancy lives here (:class:`AdapterRegistry`), and
refusals are domain errors (:class:`AdapterRegistryError`) the server maps to HTTP. An adapter is served
as an :class:`AdapterModel`, a :class:`~plinth.llm.served.ServedModel` like any base model.
"""

from plinth.adapters.errors import AdapterConflictError, AdapterRegistryError
from plinth.adapters.registry import AdapterEntry, AdapterRegistry, check_adapter_name
from plinth.adapters.served import AdapterModel, client_name
from plinth.engine.lora.archive import is_local_source

__all__ = [
    "AdapterConflictError",
    "AdapterEntry",
    "AdapterModel",
    "AdapterRegistry",
    "AdapterRegistryError",
    "check_adapter_name",
    "client_name",
    "is_local_source",
]
