"""One blueprint per page family: auth, albums (with the policy editor and its preview), jobs,
provenance, audit, health."""
