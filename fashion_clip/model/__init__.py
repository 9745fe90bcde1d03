"""The model: loading CLIP-family checkpoints, preprocessing, precision and the forward passes."""
