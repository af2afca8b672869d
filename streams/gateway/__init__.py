"""The webhook gateway: CRM webhooks in, canonical events on Kafka, at least once.

``app`` wires the HTTP endpoints; ``adapters`` map each vendor's payload to
:class:`streams.schema.CrmEvent`; ``dedupe`` (Redis) and ``publisher`` (Kafka) make a
delivery count once; ``signatures`` authenticates; ``metrics`` exposes what happened.
See ``docs/ingestion.md``.
"""
