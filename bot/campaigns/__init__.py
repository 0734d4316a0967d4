"""Campaign kinds: each plans messages from data for one run. Planning is pure: it sends nothing."""
