"""Message text: templates and their translations (above core, beside channels)."""
