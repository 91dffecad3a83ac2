"""Protocol drivers: OPC UA and Modbus TCP behind one interface (``drivers.base.Driver``).

Everything comes from config (``[drivers.<id>]`` and the tags' addresses)::

    loaded = load_config("config.toml")
    drivers = make_drivers(loaded)            # {driver id: Driver}
    for d in drivers.values():
        d.on_state_change(events.put_nowait)  # ConnectionState(state, since, last_error)
        await d.start(pipeline.handle)        # sink: list[Sample] -> None, must not block
    d.state; d.stats; d.stale_tags(30.0); d.status()
    result = await d.write("B-MOLD1.temp_sp", 231.5)  # WriteResult with read-back
    await d.stop()

``connect()`` is an optional first attempt that raises ``DriverError`` with the
reason; ``start()`` alone keeps retrying with a capped backoff until ``stop()``,
except for problems retrying cannot fix (config, a refused identity or certificate:
``DriverAuthError``), after which the driver goes DOWN with ``gave_up`` set.
"""

from drivers.base import (
    ConnectionState,
    ConnState,
    Driver,
    DriverAuthError,
    DriverConfigError,
    DriverError,
    DriverStats,
    WriteResult,
    make_driver,
    make_drivers,
)

__all__ = [
    "ConnState",
    "ConnectionState",
    "Driver",
    "DriverAuthError",
    "DriverConfigError",
    "DriverError",
    "DriverStats",
    "WriteResult",
    "make_driver",
    "make_drivers",
]
