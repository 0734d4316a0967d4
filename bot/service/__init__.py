"""The running App (configuration, database, channels, templates wired together) and what reads
across all of it: status, calendar, export, feed, composer."""
