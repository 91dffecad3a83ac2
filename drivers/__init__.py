"""Protocol drivers: OPC UA and Modbus TCP behind one interface (``drivers.base.Driver``)."""

from drivers.base import (
    ConnectionState,
    ConnState,
    Driver,
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
    "DriverConfigError",
    "DriverError",
    "DriverStats",
    "WriteResult",
    "make_driver",
    "make_drivers",
]
