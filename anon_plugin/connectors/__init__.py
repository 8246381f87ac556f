"""Photo servers reached over their APIs, beside the folders of ``library``: sources of albums, targets of copies."""
