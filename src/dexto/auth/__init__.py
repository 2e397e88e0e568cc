"""Credentials: the auth store and the one ordered credential lookup."""
