"""Build tools of the repository, outside the runtime package (neither the wheel nor
the Lambda zip carries them)."""
