"""The people: pledgemakers and their contacts, consent and review, invitations, introductions and
matchmaking, reports, erasure, staff accounts."""
