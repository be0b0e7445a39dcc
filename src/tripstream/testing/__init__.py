"""Helpers for testing tripstream itself (fault injection); never used by the pipeline unless asked to."""
