"""The daemon's eyes: which photos in the library roots are new, finished, moved or gone.

- ``stability``: when a file being written is finished;
- ``watcher``: filesystem events turned into ``Change``s, on a thread of its own.

Nothing here reads a photo, writes a file or touches the store: the service
turns ``Change``s, and the ``PhotoFile``s that its scans of the library (``anon_plugin.library``)
find, into jobs. See docs/watching.md.
"""
