"""Runs written out for other tools: TensorBoard event files and MLflow runs."""
