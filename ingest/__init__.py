"""Ingestion: documents in a folder -> chunks -> embeddings -> a new, atomically published index version."""
