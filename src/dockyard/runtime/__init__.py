"""Where instances run: the Runtime protocol and its implementations (process, docker)."""
