"""Training objectives and noise processes, one module per family."""
