"""OPC UA node ids from config text: strict parsing and namespace-URI resolution.

A namespace *index* (``ns=3``) is a position in the server's namespace table and
moves when the server's configuration changes; a namespace *URI* (``nsu=urn:...``)
does not. Config may use either; a ``nsu=`` id is resolved against the server's
namespace array after every (re)connect, so a reordered table is followed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from asyncua import ua

EXAMPLE = "ns=2;s=Line.Machine.Value, nsu=urn:vendor:plc;s=Machine.Value, i=2258"

_TYPES = {"s": "string", "i": "number", "g": "GUID", "b": "base64 ByteString"}
_SHAPE = re.compile(r"^(?:(ns|nsu)=([^;]*);)?([sigb])=(.*)$", re.DOTALL)


def parse_node_id(address: str) -> ua.NodeId:
    """Config text -> NodeId (an ``ExpandedNodeId`` with ``NamespaceUri`` for ``nsu=``).

    Raises ``ValueError`` with a message that says what is wrong and what is expected.
    """
    text = address.strip()
    m = _SHAPE.match(text)
    if not m:
        raise ValueError(f"{address!r} is not an OPC UA node id (e.g. {EXAMPLE})")
    prefix, ns, kind, ident = m.groups()
    if prefix == "ns" and not ns.isdigit():
        raise ValueError(f"{address!r}: the namespace index ns={ns} must be a number")
    if prefix == "nsu" and not ns.strip():
        raise ValueError(f"{address!r}: nsu= needs the namespace URI (nsu=urn:...;s=...)")
    if not ident:
        raise ValueError(f"{address!r}: the {_TYPES[kind]} identifier after {kind}= is empty")
    try:
        node = ua.NodeId.from_string(text)
    except Exception:
        raise ValueError(f"{address!r}: {ident!r} is not a valid {_TYPES[kind]} identifier "
                         f"for {kind}=") from None
    return node


def namespace_uri(node: ua.NodeId) -> str | None:
    """The URI of a ``nsu=`` node id, else None."""
    uri = getattr(node, "NamespaceUri", None)
    return uri or None


def resolve(node: ua.NodeId, namespaces: Sequence[str]) -> ua.NodeId:
    """A plain NodeId the server understands; ``nsu=`` ids get today's index.

    Raises ``ValueError`` when the server has no such namespace.
    """
    uri = namespace_uri(node)
    if uri is None:
        return node
    try:
        idx = list(namespaces).index(uri)
    except ValueError:
        raise ValueError(f"namespace {uri!r} is not on the server "
                         f"(it has {', '.join(namespaces)})") from None
    return ua.NodeId(node.Identifier, idx, node.NodeIdType)


def with_uri(node: ua.NodeId, namespaces: Sequence[str]) -> str:
    """A node id as config text that survives a reordered namespace table."""
    text = node.to_string()
    if node.NamespaceIndex == 0 or node.NamespaceIndex >= len(namespaces):
        return text
    ident = re.sub(r"^ns=\d+;", "", text)
    return f"nsu={namespaces[node.NamespaceIndex]};{ident}"
