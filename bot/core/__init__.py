"""The bottom layer: errors, logs, the database and its models and migrations, clocks, coordination
between processes, the campaign's vocabulary. Imports nothing else of pledgebot."""
