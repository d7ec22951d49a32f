"""Batch evaluation of a base model and its adapters; metrics; the adapter canary."""
