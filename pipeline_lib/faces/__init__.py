"""Face detection, subject choice, 5-point alignment to a 112x112 template, and the HDF5 face store."""
