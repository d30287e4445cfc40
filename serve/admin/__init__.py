"""The admin API's services: documents in the knowledge folder, ingest jobs, index versions,
stats (service.py), answer-model versions (models.py); the ingestion they need comes in through
the `Ingester` protocol (ports.py), so serve/ never imports ingest/."""
