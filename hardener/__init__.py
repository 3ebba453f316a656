"""harden: rewrite Docker Compose files so every service runs hardened."""

__version__ = "0.1.0"
