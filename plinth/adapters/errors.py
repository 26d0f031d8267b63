"""What the adapter registry refuses, as domain errors (the server maps them to HTTP in one place)."""

from __future__ import annotations

__all__ = ["AdapterConflictError", "AdapterRegistryError"]


class AdapterRegistryError(ValueError):
    """A registration refused: a bad name, source or base model. ``param`` names the request field it is
    about and ``code`` the rule (``invalid_adapter`` when the adapter itself cannot be served)."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class AdapterConflictError(AdapterRegistryError):
    """The tenant already has an adapter of that name."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="name", code="adapter_exists")
