"""The `pledgebot` command: one module per command group; `main` assembles them, `runner`
supervises the long-running roles."""
