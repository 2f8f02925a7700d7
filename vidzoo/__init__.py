"""vidzoo: video transformers by name."""
