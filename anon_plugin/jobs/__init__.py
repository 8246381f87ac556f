"""The work queue (jobs in the database, leased, never lost) and the workers that run it."""
