"""The K class GANs: state and pure train step, losses, DiffAugment, the training loop, checkpoint selection, synthesis."""
