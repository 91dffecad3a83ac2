"""The closed-loop engine: analyze, recommend, decide, execute exactly once, learn.

Modules: ``analyze`` (context + plain words), ``rules`` (detection → concrete action),
``recommend`` (one open recommendation per problem), ``decide`` (autonomy, e-signed
approve/reject, undo, promotion), ``outbox`` + ``executors`` (exactly-once execution),
``learn`` (outcomes, track record, rejection feedback), ``events`` (the event bus),
``engine`` (all of it wired).

Wiring in the runtime (one Engine per process; all state lives in the store)::

    bus = EventBus()
    eng = Engine(store, loaded.config, clock, plant=<PlantCommands over the drivers>,
                 device=<DeviceWriter over the drivers>, bus=bus)
    detect_loop = DetectLoop(..., on_detection=eng.on_detection, publish=bus.publish)
    threading.Thread(target=eng.executor.run_forever, args=(stop,), daemon=True).start()
    # every minute or so: eng.recommender.expire_stale(); eng.evaluate()

A person decides with ``eng.approve(rec_id, user_id=..., pin=...)`` (or a
``SigningSession``) and ``eng.reject(rec_id, user, pin, reason_code, text)``; an admin
changes a class's autonomy with ``eng.decider.set_autonomy(cls, level, admin, pin)``.
Read models: ``recommend.ranked(store)``, ``learn.track_record(store, since)``,
``learn.feedback(store, since)``.
"""
