"""Ingest: user files -> validated runs -> store, all or nothing.

- ``detect``:   open files safely (UTF-8, not binary, not empty) and tell their format
- ``names``:    column roles by prefix, name cleaning (``train_``, ``metric/``, ``_val_loss``, corpus prefix)
- ``validate``: single values and mixtures, each failure an InputError with file, line, column and fix
- ``table``:    the typed values between steps (ColumnRoles, ParsedRun, DomainMetadata)
- ``readers``:  tidy CSV and JSONL, streamed in chunks
- ``pairs``:    the RegMix and Olmix two-file formats, joined by run id
- ``metadata``: domain metadata from CSV or YAML
- ``mixtures``: candidate mixtures from any of those layouts (predict, the what-if editor), by the same checks
- ``writer``:   chunked bulk writes inside the caller's transaction

The use-case (``ingest_files``) lives in ``engine.services.ingest``.
"""
