"""The command-line applications of ``brain-ai`` (the top of the house; nothing imports them)."""
