"""Training: sequence data, losses, optimizers, flat buffers, the trainer, callbacks."""
