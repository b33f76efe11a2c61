"""The cached feature store (zarr) and in-RAM window datasets over it for the temporal models."""
