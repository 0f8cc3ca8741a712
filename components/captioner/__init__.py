"""The captioner as train, evaluate and serving all see it: model families, the model
artifact, generation settings and weight hashing."""
