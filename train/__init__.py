"""Training: LoRA style tuning on example conversations and GGUF export."""
