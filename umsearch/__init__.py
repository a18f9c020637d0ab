"""umsearch: local, private, semantic photo search (GME embeddings in one SQLite file)."""

__version__ = "0.1.0"
