"""The `ragtune` command: the layer on top that composes the core, ingestion, serving, training and
evaluation. Nothing below it imports it; `main(argv)` is in cli/main.py."""
