"""The closed-loop engine: analyze, recommend, decide, execute exactly once, learn.

Modules: ``analyze`` (context + plain words), ``rules`` (detection → concrete action),
``recommend`` (one open recommendation per problem), ``decide`` (autonomy, e-signed
approve/reject, undo), ``outbox`` + ``executors`` (exactly-once execution), ``learn``
(outcomes, track record), ``events`` (the event bus), ``engine`` (all of it wired).
"""
