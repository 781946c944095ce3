"""The installed sagetrack version (one place; ships to the training container)."""

__version__ = "0.1.0"
