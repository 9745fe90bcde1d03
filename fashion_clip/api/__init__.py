"""The original fashion-clip Python API (`FashionCLIP`, `FCLIPDataset`) over the library."""
