"""Model definitions: the masked autoencoder for aligned faces and its registry of named sizes."""
