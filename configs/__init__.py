"""Defaults of the command-line scripts (train, play, gateway, real), shipped inside the package."""
