"""Inference backends: one model interface, run in-process (embedded) or on Triton Inference Server."""
