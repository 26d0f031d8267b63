"""Knowledge bases: sources -> chunks -> embeddings -> a store, synced incrementally and queried.

The public entry points are :class:`~plinth.knowledge.service.KnowledgeService` (what the server and
CLI call), :class:`~plinth.knowledge.kb.KnowledgeBaseConfig`, :func:`~plinth.knowledge.sync.sync` and
:func:`~plinth.knowledge.retriever.retrieve`. Submodules are imported on use (``from
plinth.knowledge.service import KnowledgeService``) so that importing the package stays cheap.
"""
