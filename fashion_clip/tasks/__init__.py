"""What the model is used for: embedding, zero-shot classification, localization, metrics."""
