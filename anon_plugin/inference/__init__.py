"""The inference module: the anonymization engine, one module per stage.

detect -> landmarks -> align -> saliency (ID attention map) -> mask -> fill ->
blend, wired by ``pipeline.Anonymizer``; ``batch`` runs many photos at once.
Network code is in ``networks/``; the weight files and their manifest are in
the top-level ``models/`` (installed as ``anon_plugin.models``), looked up by
``registry``. Heavy modules load on first use, not at import.
"""
