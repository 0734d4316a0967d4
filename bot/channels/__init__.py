"""Channel adapters: one module per platform, registered by one line in ``registry.py``."""
