"""Lines on OPC UA: the twin's address space served by asyncua.

Node ids come from the config (``ns=2;s=<line>.<equipment>.<Variable>``): the twin
registers its namespace first so it gets index 2. Every variable is typed, carries
its unit (EngineeringUnits property and the Description) and is published with the
twin clock as SourceTimestamp. Client writes to setpoints and Command variables are
checked before they land: out-of-limit setpoints get BadOutOfRange, refused commands
BadInvalidArgument, and the value is left unchanged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.server.user_managers import UserManager

from sim.plant import Machine, Plant
from sim.vision import as_json

NAMESPACE_URI = "urn:loopline:twin"

VTYPES = {
    "bool": ua.VariantType.Boolean, "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16, "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32, "int64": ua.VariantType.Int64,
    "float32": ua.VariantType.Float, "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
}
_log = logging.getLogger("sim.opcua")


@dataclass
class Served:
    nodeid: ua.NodeId
    machine: Machine | None  # None: a plant tag
    name: str
    vtype: ua.VariantType
    kind: str
    last: Any = None
    bad: bool = False


@dataclass
class Security:
    cert_dir: Path
    username: str | None = None
    password: str | None = None


class _Users(UserManager):
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username == self.username and password == self.password:
            return User(role=UserRole.User, name=username)
        return None


def coerce(value: Any, vtype: ua.VariantType) -> Any:
    if vtype in (ua.VariantType.Float, ua.VariantType.Double):
        return float(value)
    if vtype == ua.VariantType.String:
        return str(value)
    if vtype == ua.VariantType.Boolean:
        return bool(value)
    return int(value)


class OpcUaTwinServer:
    def __init__(self, plant: Plant, host: str, port: int,
                 security: Security | None = None) -> None:
        self.plant = plant
        self.host, self.port = host, port
        self.security = security
        self.endpoint = f"opc.tcp://{host}:{port}/loopline/"
        self.server: Server | None = None
        self.served: list[Served] = []
        self._by_node: dict[ua.NodeId, Served] = {}
        self.updates = 0  # values written to the address space, for the benchmark

    async def start(self) -> None:
        sec = self.security
        users = _Users(sec.username, sec.password) if sec and sec.username and sec.password \
            else None
        server = Server(user_manager=users) if users else Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("loopline plant twin")
        if sec is not None:
            await self._secure(server, sec)
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != 2:
            raise RuntimeError(f"twin namespace got index {idx}, config node ids expect 2")
        await self._build(server, idx)
        orig_write = server.iserver.attribute_service.write

        async def checked_write(params: ua.WriteParameters, user: Any = None) -> list:
            return await self._write(orig_write, params, user)

        server.iserver.attribute_service.write = checked_write  # type: ignore[method-assign]
        await server.start()
        self.server = server
        await self.publish()

    async def _secure(self, server: Server, sec: Security) -> None:
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID

        sec.cert_dir.mkdir(parents=True, exist_ok=True)
        key, cert = sec.cert_dir / "twin-key.pem", sec.cert_dir / "twin-cert.der"
        await setup_self_signed_certificate(
            key, cert, "urn:loopline:twin:server", self.host,
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
            {"countryName": "DE", "organizationName": "loopline", "commonName": "loopline twin"},
        )
        await server.set_application_uri("urn:loopline:twin:server")
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        if sec.username:
            server.set_security_IDs(["Username"])

    async def _build(self, server: Server, idx: int) -> None:
        cfg = self.plant.loaded
        drivers = cfg.config.drivers
        objects = server.nodes.objects
        folders: dict[str, Any] = {}

        async def folder(path: str, parent: Any, name: str) -> Any:
            if path not in folders:
                folders[path] = await parent.add_folder(ua.NodeId(path, idx), ua.QualifiedName(
                    name, idx))
            return folders[path]

        for t in cfg.tags:
            if drivers[t.driver_id].kind != "opcua":
                continue
            m = self.plant.machines.get(t.equipment_id or "") if t.equipment_id else None
            if t.equipment_id and m is None:
                continue  # line not simulated (tests may run a subset)
            nodeid = ua.NodeId.from_string(t.spec.address)
            sid = str(nodeid.Identifier)
            parts = sid.split(".")
            parent = objects
            for i in range(len(parts) - 1):
                parent = await folder(".".join(parts[: i + 1]), parent, parts[i])
            vtype = VTYPES[t.spec.data_type]
            init = self._value(m, t.name)
            var = await parent.add_variable(nodeid, ua.QualifiedName(parts[-1], idx),
                                            ua.Variant(coerce(init, vtype), vtype))
            desc = t.spec.description or t.name
            if t.spec.unit:
                desc = f"{desc} [{t.spec.unit}]"
                eu = ua.EUInformation(
                    NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
                    UnitId=-1, DisplayName=ua.LocalizedText(t.spec.unit),
                    Description=ua.LocalizedText(t.spec.unit))
                await var.add_property(idx, "EngineeringUnits", eu)
            await var.write_attribute(ua.AttributeIds.Description,
                                      ua.DataValue(ua.Variant(ua.LocalizedText(desc))))
            if t.spec.writable:
                await var.set_writable()
            s = Served(nodeid, m, t.name, vtype, t.spec.kind)
            self.served.append(s)
            self._by_node[nodeid] = s

    def _value(self, m: Machine | None, name: str, snap: dict[str, Any] | None = None) -> Any:
        if m is None:
            if name == "clock":
                return self.plant.iso(self.plant.t)
            if name == "epoch":
                return self.plant.iso(0)
            return ""
        snap = snap if snap is not None else m.snapshot()
        return snap.get(name, "" if name in ("lot", "order", "recipe", "batch") else 0)

    async def publish(self) -> int:
        """Write changed values to the address space; returns how many changed."""
        if self.server is None:
            return 0
        aspace = self.server.iserver.aspace
        ts = self.plant.now()
        t = self.plant.t
        snaps: dict[str, dict[str, Any]] = {}
        n = 0
        for s in self.served:
            m = s.machine
            if m is not None and not m.comms_ok(t):
                if not s.bad:
                    s.bad = True
                    dv = ua.DataValue(StatusCode=ua.StatusCode(
                        ua.StatusCodes.BadCommunicationError), SourceTimestamp=ts,
                        ServerTimestamp=ts)
                    await aspace.write_attribute_value(s.nodeid, ua.AttributeIds.Value, dv)
                    n += 1
                continue
            if m is not None and s.kind == "vision":
                recs = self.plant.vision.drain(m.id)
                for at, rec in recs:  # every unit, with its own time
                    text = as_json(rec)
                    at_ts = self.plant.start + timedelta(seconds=at)
                    dv = ua.DataValue(ua.Variant(text, s.vtype), SourceTimestamp=at_ts,
                                      ServerTimestamp=ts)
                    await aspace.write_attribute_value(s.nodeid, ua.AttributeIds.Value, dv)
                    s.last, s.bad = text, False
                    n += 1
                if recs:
                    continue
            if m is not None:
                snap = snaps.get(m.id)
                if snap is None:
                    snap = snaps[m.id] = m.snapshot()
                v = self._value(m, s.name, snap)
            else:
                v = self._value(None, s.name)
            if s.kind == "vision":
                v = as_json(v if isinstance(v, dict) else None)
            if v == s.last and not s.bad:
                continue
            s.last, s.bad = v, False
            dv = ua.DataValue(ua.Variant(coerce(v, s.vtype), s.vtype), SourceTimestamp=ts,
                              ServerTimestamp=ts)
            await aspace.write_attribute_value(s.nodeid, ua.AttributeIds.Value, dv)
            n += 1
        self.updates += n
        return n

    async def _write(self, orig: Any, params: ua.WriteParameters, user: Any) -> list:
        results: list[ua.StatusCode] = []
        for wv in params.NodesToWrite:
            s = self._by_node.get(wv.NodeId)
            if s is not None and wv.AttributeId == ua.AttributeIds.Value and s.machine is not None:
                var = wv.Value.Value
                if var is None or var.VariantType != s.vtype:
                    results.append(ua.StatusCode(ua.StatusCodes.BadTypeMismatch))
                    continue
                code = self._apply(s, var.Value)
                if code is not None:
                    results.append(ua.StatusCode(code))
                    continue
                # the plant took the value at twin time: stamp it so, not with the
                # server's wall clock (a fast twin's history would get a sample from
                # the future that stays 'newest' for every reader of the setpoint)
                ts = self.plant.now()
                wv = ua.WriteValue(NodeId=wv.NodeId, AttributeId=wv.AttributeId,
                                   IndexRange=wv.IndexRange,
                                   Value=ua.DataValue(var, SourceTimestamp=ts,
                                                      ServerTimestamp=ts))
            one = ua.WriteParameters(NodesToWrite=[wv])
            results.extend(await (orig(one, user) if user is not None else orig(one)))
        return results

    def _apply(self, s: Served, value: Any) -> int | None:
        """Hand a client write to the plant; a Bad status code when it is refused."""
        m = s.machine
        assert m is not None
        if s.kind == "setpoint":
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return ua.StatusCodes.BadTypeMismatch
            err = self.plant.write_setpoint(m.id, s.name, float(value))
            if err is not None:
                _log.info("refused setpoint %s.%s=%s: %s", m.id, s.name, value, err)
                return ua.StatusCodes.BadOutOfRange
            s.last = float(value)
            return None
        if s.kind == "command":
            if not isinstance(value, str):
                return ua.StatusCodes.BadTypeMismatch
            err = self.plant.command(m.id, value)
            if err is not None:
                _log.info("refused command on %s: %s (%s)", m.id, value, err)
                return ua.StatusCodes.BadInvalidArgument
            return None
        return ua.StatusCodes.BadNotWritable

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
