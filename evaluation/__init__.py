"""Evaluation, one home for every kind: retrieval (nDCG on BEIR-layout data), answers (the release
gate for a retriever x model x answer-mode combination). It sits above ingest/ and serve/ (it
builds indexes and runs the real pipeline), so the parts it measures never import it."""
