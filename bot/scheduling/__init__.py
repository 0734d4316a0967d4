"""When campaigns run: schedule files, runs, the scheduler, the sweeper and previews."""
