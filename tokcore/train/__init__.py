"""The shared training loop: settings, data split, checkpoints, launch."""
