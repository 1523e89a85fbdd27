"""The embedded runtime: the whole pipeline on one machine."""
