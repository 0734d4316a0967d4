"""The configuration file: every section, and each channel's table checked against its adapter's
settings model."""
