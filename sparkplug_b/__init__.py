"""The Sparkplug B payload as the specification defines it, for both ends of the wire.

``sparkplug_b.proto`` is the schema from the Eclipse Sparkplug 3.0 specification
(chapter 6, EPL-2.0) verbatim; ``sparkplug_b_pb2.py`` is generated from it (see
README.md). This package holds only what the specification says: the payload
messages, the data type numbers and how a metric's value sits in them. The host
application (``drivers.mqtt``) and the twin's edge node (``sim.sparkplug``) both
import it, as both import asyncua for OPC UA; neither imports the other.
"""

from sparkplug_b.values import (
    BDSEQ,
    NODE_REBIRTH,
    DataType,
    Metric,
    Payload,
    get_value,
    set_value,
)

NAMESPACE = "spBv1.0"

__all__ = [
    "BDSEQ",
    "NAMESPACE",
    "NODE_REBIRTH",
    "DataType",
    "Metric",
    "Payload",
    "get_value",
    "set_value",
]
