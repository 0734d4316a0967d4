"""Receiving: the inbox that stores what channels deliver, and the conversation that turns replies
into journey updates."""
