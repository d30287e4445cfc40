"""Serving: the chat service, model engines and the FastAPI app."""
