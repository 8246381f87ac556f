"""The library as files: its albums and candidate photos (``walk``) and what is not a photo (``ignore``).

The daemon, the CLI and the panel all read the library through this package;
none of it depends on the daemon.
"""
