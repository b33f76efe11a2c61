"""The files trained models and their predictions live in: checkpoints (torch) and prediction files (HDF5)."""
