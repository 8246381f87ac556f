"""One module per ``anon-plugin`` verb that is not part of the engine (registered lazily by anon_plugin.cli)."""
