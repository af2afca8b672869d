"""CSV / JSON-lines backfill of CRM exports: mapping, validation, dry run, publishing.

See ``docs/backfill.md``. Modules: :mod:`.reader` (files to rows with line numbers),
:mod:`.mapping` (the declarative YAML mapping and the row to event transform),
:mod:`.export` (an export folder through a mapping), :mod:`.validate`, :mod:`.dryrun`,
:mod:`.publish` and :mod:`.command` (the ``salespulse backfill`` command).
"""
