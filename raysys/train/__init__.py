"""Training on Ray Train: TRL + PEFT inside the worker function."""
