"""The daemon's eyes: which photos in the library roots are new, finished, moved or gone.

- ``ignore``: what is never a photo (system clutter, sync folders, the admin's patterns);
- ``stability``: when a file being written is finished;
- ``scan``: every candidate photo, for the startup scan and the periodic rescan;
- ``watcher``: filesystem events turned into ``Change``s, on a thread of its own.

Nothing here reads a photo, writes a file or touches the store: the service
turns ``Change``s and ``Found``s into jobs. See docs/watching.md.
"""
