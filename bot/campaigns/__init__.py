"""Campaign kinds, one module each (model, planning, samples), listed in ``registry``. Planning is
pure: it sends nothing."""
