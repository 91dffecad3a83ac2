"""OPC UA driver against a minimal asyncua server built here (not the twin), via config alone."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.common.node import Node
from driver_helpers import Collector, free_port, wait_until, write_config

from core.samples import Quality
from drivers.base import CONNECTION_LOST, ConnState, DriverError, make_driver
from drivers.opcua import OpcUaDriver
from drivers.opcua_values import to_variant

NS_URI = "urn:loopline:test-plc"

# name -> (variant type, initial value, writable)
VARIABLES: dict[str, tuple[ua.VariantType, Any, bool]] = {
    "Temp": (ua.VariantType.Double, 20.5, False),
    "Other": (ua.VariantType.Double, 1.0, False),
    "SpeedSP": (ua.VariantType.Float, 0.0, True),
    "State": (ua.VariantType.Int16, 1, True),
    "Mode": (ua.VariantType.UInt16, 0, True),
    "Good": (ua.VariantType.UInt32, 7, True),
    "Enabled": (ua.VariantType.Boolean, False, True),
    "Lot": (ua.VariantType.String, "L-00001", True),
}
DTYPES = {
    ua.VariantType.Double: "float64",
    ua.VariantType.Float: "float32",
    ua.VariantType.Int16: "int16",
    ua.VariantType.UInt16: "uint16",
    ua.VariantType.UInt32: "uint32",
    ua.VariantType.Boolean: "bool",
    ua.VariantType.String: "string",
}


@dataclass
class Plc:
    port: int
    server: Server | None = None
    ns: int = 2
    nodes: dict[str, Node] = field(default_factory=dict)
    user_manager: Any = None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/plc/"

    async def start(
        self, values: dict[str, Any] | None = None, other_ns: int = 0, **security: Any
    ) -> None:
        """``other_ns`` namespaces are registered first, moving ours to a higher index."""
        s = Server(user_manager=self.user_manager)
        await s.init()
        s.set_endpoint(self.endpoint)
        s.set_server_name("loopline test PLC")
        if security:
            await security["setup"](s)
        for k in range(other_ns):
            await s.register_namespace(f"urn:loopline:other-{k}")
        self.ns = await s.register_namespace(NS_URI)
        obj = await s.nodes.objects.add_object(ua.NodeId("M1", self.ns), "M1")
        self.nodes = {}
        for name, (vt, init, writable) in VARIABLES.items():
            v = (values or {}).get(name, init)
            node = await obj.add_variable(ua.NodeId(f"M1.{name}", self.ns), name, ua.Variant(v, vt))
            if writable:
                await node.set_writable()
            self.nodes[name] = node
        await s.start()
        self.server = s

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def set(
        self, name: str, value: Any, status: int = 0, source_ts: datetime | None = None
    ) -> None:
        vt = VARIABLES[name][0]
        dv = ua.DataValue(
            ua.Variant(value, vt),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=source_ts or datetime.now(UTC),
            ServerTimestamp=datetime.now(UTC),
        )
        await self.nodes[name].write_value(dv)

    async def get(self, name: str) -> ua.Variant:
        dv = await self.nodes[name].read_data_value()
        assert dv.Value is not None
        return dv.Value


@pytest.fixture
async def plc() -> AsyncIterator[Plc]:
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    p = Plc(free_port())
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


def ua_driver(endpoint: str, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "kind": "opcua",
        "endpoint": endpoint,
        "publishing_interval_ms": 50,
        "sampling_interval_ms": 20,
        "queue_size": 10,
        "timeout_s": 2.0,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
    }
    cfg.update(extra)
    return cfg


def ua_tags(
    ns: int, names: list[str] | None = None, **per_tag: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for name in names or list(VARIABLES):
        vt, _, writable = VARIABLES[name]
        t: dict[str, Any] = {
            "name": name.lower(),
            "address": f"ns={ns};s=M1.{name}",
            "data_type": DTYPES[vt],
            "writable": writable,
        }
        t.update(per_tag.get(name, {}))
        out.append(t)
    return out


async def started(tmp_path: Path, plc: Plc, **extra: Any) -> tuple[OpcUaDriver, Collector]:
    tags = extra.pop("tags", None) or ua_tags(plc.ns)
    loaded = write_config(tmp_path, "plc", ua_driver(plc.endpoint, **extra), tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    assert isinstance(drv, OpcUaDriver)
    sink = Collector()
    await drv.connect()
    await drv.start(sink)
    return drv, sink


# ---------------------------------------------------------------- reading


async def test_values_arrive_with_quality_and_source_time(tmp_path: Path, plc: Plc) -> None:
    drv, sink = await started(tmp_path, plc)
    try:
        ids = [f"M1.{n.lower()}" for n in VARIABLES]
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        assert drv.state.state is ConnState.CONNECTED
        first = {i: sink.good(i)[0].value for i in ids}
        assert first["M1.temp"] == 20.5 and first["M1.lot"] == "L-00001"
        assert first["M1.good"] == 7 and first["M1.enabled"] is False and first["M1.state"] == 1
        src = datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)
        await plc.set("Temp", 81.25, source_ts=src)
        await sink.wait_for(lambda: sink.last("M1.temp").value == 81.25)  # type: ignore[union-attr]
        s = sink.last("M1.temp")
        assert s is not None and s.quality is Quality.GOOD and s.source_ts == src
        assert s.reason is None
        assert drv.stale_tags(3600) == [] and drv.last_update("M1.temp") is not None
        # a constant value is confirmed current by the subscription's later publishes
        n_lot = len(sink.of("M1.lot"))
        lot_seen = drv.last_update("M1.lot")
        await plc.set("Temp", 82.0)
        await sink.wait_for(lambda: sink.last("M1.temp").value == 82.0)  # type: ignore[union-attr]
        assert len(sink.of("M1.lot")) == n_lot
        assert lot_seen is not None and drv.last_update("M1.lot") > lot_seen  # type: ignore[operator]
    finally:
        await drv.stop()
    assert drv.state.state is ConnState.DOWN


async def test_status_codes_map_to_uncertain_and_bad(tmp_path: Path, plc: Plc) -> None:
    drv, sink = await started(tmp_path, plc)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        await plc.set("Temp", 55.0, status=ua.StatusCodes.UncertainLastUsableValue)
        await sink.wait_for(lambda: sink.last("M1.temp").quality is Quality.UNCERTAIN)  # type: ignore[union-attr]
        u = sink.last("M1.temp")
        assert u is not None and u.value == 55.0 and u.reason == "UncertainLastUsableValue"
        await plc.set("Temp", 56.0, status=ua.StatusCodes.BadSensorFailure)
        await sink.wait_for(lambda: sink.last("M1.temp").quality is Quality.BAD)  # type: ignore[union-attr]
        b = sink.last("M1.temp")
        assert b is not None and b.value is None and b.reason == "BadSensorFailure"
        await plc.set("Temp", 57.0)
        await sink.wait_for(lambda: sink.last("M1.temp").quality is Quality.GOOD)  # type: ignore[union-attr]
        assert sink.last("M1.temp").value == 57.0  # type: ignore[union-attr]
        assert drv.state.state is ConnState.CONNECTED
    finally:
        await drv.stop()


async def test_nan_from_server_is_bad(tmp_path: Path, plc: Plc) -> None:
    drv, sink = await started(tmp_path, plc)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        await plc.set("Temp", float("nan"))
        await sink.wait_for(lambda: sink.last("M1.temp").quality is Quality.BAD)  # type: ignore[union-attr]
        assert "non-finite" in (sink.last("M1.temp").reason or "")  # type: ignore[union-attr]
    finally:
        await drv.stop()


async def test_deadband_and_many_subscriptions_and_sessions(tmp_path: Path, plc: Plc) -> None:
    tags = ua_tags(plc.ns, Temp={"deadband": 5.0})
    drv, sink = await started(tmp_path, plc, tags=tags, sessions=2, max_items_per_subscription=2)
    try:
        assert len(drv.sessions) == 2
        ids = [f"M1.{n.lower()}" for n in VARIABLES]
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        assert sum(len(s.subs) for s in drv.sessions) == 4  # 8 tags, 2 sessions, 2 per sub
        # a change inside the deadband is filtered by the server; the control tag is not
        await plc.set("Temp", 22.0)
        await plc.set("Other", 2.0)
        await sink.wait_for(lambda: sink.last("M1.other").value == 2.0)  # type: ignore[union-attr]
        await plc.set("Temp", 40.0)
        await sink.wait_for(lambda: sink.last("M1.temp").value == 40.0)  # type: ignore[union-attr]
        assert 22.0 not in [s.value for s in sink.of("M1.temp")]
    finally:
        await drv.stop()


async def test_unknown_node_and_refused_write(tmp_path: Path, plc: Plc) -> None:
    tags = [
        *ua_tags(plc.ns, ["Temp"], Temp={"writable": True}),  # config says yes, server says no
        {"name": "ghost", "address": f"ns={plc.ns};s=M1.Ghost", "data_type": "float64"},
    ]
    drv, sink = await started(tmp_path, plc, tags=tags)
    try:
        await sink.wait_for(lambda: bool(sink.of("M1.ghost")) and bool(sink.good("M1.temp")))
        g = sink.of("M1.ghost")[0]
        assert g.quality is Quality.BAD and "BadNodeIdUnknown" in (g.reason or "")
        assert "M1.ghost" in drv.stale_tags(0.0)  # never delivered a value
        r = await drv.write("M1.temp", 5.0)
        assert not r.ok and "server refused: Bad" in (r.error or "")
        assert drv.state.state is ConnState.CONNECTED
    finally:
        await drv.stop()


# ---------------------------------------------------------------- writing


async def test_typed_writes_with_read_back(tmp_path: Path, plc: Plc) -> None:
    drv, sink = await started(tmp_path, plc)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.speedsp")))
        r = await drv.write("M1.speedsp", 1234.5)  # a Python float to a Float node
        assert r.ok and r.read_back == 1234.5 and r.error is None
        v = await plc.get("SpeedSP")
        assert v.VariantType == ua.VariantType.Float and v.Value == 1234.5
        r = await drv.write("M1.speedsp", 0.1)  # float32 precision is accepted
        assert r.ok
        for tag, value, vt in [
            ("M1.state", -3, ua.VariantType.Int16),
            ("M1.mode", 65535, ua.VariantType.UInt16),
            ("M1.good", 4_000_000_000, ua.VariantType.UInt32),
            ("M1.enabled", True, ua.VariantType.Boolean),
            ("M1.lot", "L-00042", ua.VariantType.String),
        ]:
            r = await drv.write(tag, value)
            assert r.ok and r.read_back == value, (tag, r)
            got = await plc.get(tag.split(".")[1].capitalize())
            assert got.VariantType == vt and got.Value == value
        r = await drv.write("M1.state", 40000)
        assert not r.ok and "outside the int16 range" in (r.error or "")
        r = await drv.write("M1.temp", 1.0)
        assert not r.ok and "not writable" in (r.error or "")
        r = await drv.write("M1.state", "abc")
        assert not r.ok and "not a number" in (r.error or "")
        await sink.wait_for(lambda: sink.last("M1.lot").value == "L-00042")  # type: ignore[union-attr]
    finally:
        await drv.stop()


def test_to_variant_types() -> None:
    assert to_variant(1.5, "float32").VariantType == ua.VariantType.Float
    assert to_variant(2, "float64").Value == 2.0
    assert to_variant("7", "uint16").Value == 7
    assert to_variant(12.3, "int16", scale=0.1).Value == 123
    assert to_variant("on", "bool").Value is True
    with pytest.raises(ValueError, match="whole number"):
        to_variant(1.5, "int32")
    with pytest.raises(ValueError, match="cannot be written"):
        to_variant(float("inf"), "float64")


# ---------------------------------------------------------------- connection loss


async def test_server_restart_marks_gap_reconnects_and_resumes(tmp_path: Path, plc: Plc) -> None:
    drv, sink = await started(tmp_path, plc)
    states: list[ConnState] = []
    drv.on_state_change(lambda st: states.append(st.state))
    ids = [f"M1.{n.lower()}" for n in VARIABLES]
    try:
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        await plc.stop()
        # every tag gets an explicit Bad/no-value marker: history shows the gap
        await sink.wait_for(
            lambda: all(any(s.reason == CONNECTION_LOST for s in sink.of(i)) for i in ids)
        )
        for i in ids:
            m = next(s for s in sink.of(i) if s.reason == CONNECTION_LOST)
            assert m.quality is Quality.BAD and m.value is None
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        assert drv.stale_tags(0.0)  # markers do not count as fresh data
        await plc.start(values={"Temp": 99.5})
        await sink.wait_for(lambda: any(s.value == 99.5 for s in sink.good("M1.temp")))
        await wait_until(lambda: drv.state.state is ConnState.CONNECTED)
        assert drv.stats.reconnects >= 1
        assert states[:2] == [ConnState.RECONNECTING, ConnState.CONNECTED] or (
            ConnState.RECONNECTING in states and states[-1] is ConnState.CONNECTED
        )
        # order per tag: good, marker, good again
        temp = sink.of("M1.temp")
        k = next(n for n, s in enumerate(temp) if s.reason == CONNECTION_LOST)
        assert temp[k - 1].quality is Quality.GOOD and temp[-1].value == 99.5
        # the restored subscription keeps delivering changes
        await plc.set("Temp", 12.0)
        await sink.wait_for(lambda: sink.last("M1.temp").value == 12.0)  # type: ignore[union-attr]
        # writes work on the new session
        r = await drv.write("M1.speedsp", 3.25)
        assert r.ok
    finally:
        await drv.stop()


async def test_server_absent_at_start(tmp_path: Path) -> None:
    port = free_port()
    loaded = write_config(
        tmp_path, "plc", ua_driver(f"opc.tcp://127.0.0.1:{port}/plc/"), ua_tags(2, ["Temp"])
    )
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags)
    with pytest.raises(DriverError, match=str(port)):
        await drv.connect()
    assert drv.state.state is ConnState.CONNECTING and drv.state.last_error
    sink = Collector()
    await drv.start(sink)
    p = Plc(port)
    try:
        await wait_until(lambda: drv.stats.errors >= 2)
        await p.start()
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        assert drv.state.state is ConnState.CONNECTED
        r = await drv.write("M1.temp", 1.0)
        assert not r.ok
    finally:
        await drv.stop()
        await p.stop()


async def test_password_refused_without_encryption(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # config validation refuses this; the driver checks again in case a model was built by hand
    loaded = write_config(
        tmp_path, "plc", ua_driver("opc.tcp://127.0.0.1:1/x/"), ua_tags(2, ["Temp"])
    )
    cfg = loaded.config.drivers["plc"].model_copy(update={"username": "u", "password": "secret"})
    drv = make_driver("plc", cfg, loaded.tags)
    with pytest.raises(DriverError, match="unencrypted"):
        await drv.connect()
    monkeypatch.delenv("LOOPLINE_TEST_PW", raising=False)
    cfg2 = loaded.config.drivers["plc"].model_copy(
        update={
            "security_policy": "Basic256Sha256",
            "security_mode": "SignAndEncrypt",
            "password_env": "LOOPLINE_TEST_PW",
            "username": "u",
        }
    )
    drv2 = make_driver("plc", cfg2, loaded.tags)
    with pytest.raises(DriverError, match="LOOPLINE_TEST_PW"):
        await drv2.connect()
    # started anyway, it goes DOWN with the reason instead of retrying forever
    await drv2.start(Collector())
    try:
        await wait_until(lambda: drv2.state.state is ConnState.DOWN)
        st = drv2.status()
        assert st["state"] == "down" and "LOOPLINE_TEST_PW" in str(st["last_error"])
        assert st["driver"] == "plc" and st["kind"] == "opcua" and st["tags"] == 1
    finally:
        await drv2.stop()


# ---------------------------------------------------------------- security


def make_cert(folder: Path, name: str, uri: str) -> tuple[Path, Path]:
    """A self-signed certificate with the application URI in its SubjectAltName."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / f"{name}.pem"
    key_path = folder / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class OnlyOperator:
    """The server accepts exactly one user/password pair and nothing anonymous."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, str | None]] = []

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        self.seen.append((username, password))
        if username == "operator" and password == "s3cret-pw":
            return User(role=UserRole.User)
        return None


async def test_basic256sha256_sign_and_encrypt_with_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    server_cert, server_key = make_cert(pki, "server", "urn:freeopcua:python:server")
    make_cert(pki, "client", "urn:loopline:test-client")

    async def setup(s: Server) -> None:
        await s.load_certificate(str(server_cert))
        await s.load_private_key(str(server_key))
        s.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])

    users = OnlyOperator()
    plc = Plc(free_port(), user_manager=users)
    await plc.start(setup=setup)
    monkeypatch.setenv("LOOPLINE_TEST_OPC_PW", "s3cret-pw")
    secure = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": "pki/client.pem",  # relative to the config file's folder
        "private_key": "pki/client-key.pem",
        "server_certificate": "pki/server.pem",
        "username": "operator",
        "password_env": "LOOPLINE_TEST_OPC_PW",
    }
    drv = None
    try:
        drv, sink = await started(
            tmp_path, plc, tags=ua_tags(plc.ns, ["Temp", "SpeedSP"]), **secure
        )
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        assert sink.good("M1.temp")[0].value == 20.5
        assert ("operator", "s3cret-pw") in users.seen
        client = drv.sessions[0].client
        assert client is not None
        assert client.security_policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
        r = await drv.write("M1.speedsp", 42.5)
        assert r.ok and r.read_back == 42.5
        await drv.stop()
        # a wrong password is refused by the server and reported, not swallowed
        monkeypatch.setenv("LOOPLINE_TEST_OPC_PW", "wrong")
        loaded = write_config(
            tmp_path, "plc", ua_driver(plc.endpoint, **secure), ua_tags(plc.ns, ["Temp"])
        )
        drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
        with pytest.raises(DriverError, match=r"BadUserAccessDenied|denied|Denied"):
            await drv.connect()
        assert "BadUserAccessDenied" in (drv.state.last_error or "")
        # and without encryption the server has no endpoint for us at all
        plain = {"kind": "opcua", "endpoint": plc.endpoint, "timeout_s": 2.0}
        loaded = write_config(tmp_path, "plc", plain, ua_tags(plc.ns, ["Temp"]))
        drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
        with pytest.raises(DriverError, match="endpoint"):
            await drv.connect()
    finally:
        if drv is not None:
            await drv.stop()
        await plc.stop()


# ---------------------------------------------------------------- namespace URIs


async def test_nsu_node_ids_follow_a_reordered_namespace_table(tmp_path: Path, plc: Plc) -> None:
    tags = [
        {"name": "temp", "address": f"nsu={NS_URI};s=M1.Temp", "data_type": "float64"},
        {"name": "sp", "address": f"nsu={NS_URI};s=M1.SpeedSP", "data_type": "float32",
         "writable": True},
        {"name": "gone", "address": "nsu=urn:nobody;s=M1.Temp", "data_type": "float64"},
    ]
    drv, sink = await started(tmp_path, plc, tags=tags)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        assert plc.ns == 2 and sink.good("M1.temp")[0].value == 20.5
        gone = sink.last("M1.gone")
        assert gone is not None and gone.quality is Quality.BAD
        assert "urn:nobody" in (gone.reason or "") and "not on the server" in (gone.reason or "")
        # the server comes back with two namespaces in front of ours: index 4, same URI
        await plc.stop()
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        await plc.start(values={"Temp": 31.5}, other_ns=2)
        assert plc.ns == 4
        await sink.wait_for(lambda: any(s.value == 31.5 for s in sink.good("M1.temp")))
        r = await drv.write("M1.sp", 7.5)
        assert r.ok and (await plc.get("SpeedSP")).Value == 7.5
    finally:
        await drv.stop()


# ---------------------------------------------------------------- reconnect timing, errors


async def test_data_resumes_within_the_backoff_cap_after_a_long_outage(
    tmp_path: Path, plc: Plc
) -> None:
    """With the default backoff (0.1 s doubling to a 1 s cap) the first good value after
    the server is back arrives within about a second, however long it was away."""
    tags = ua_tags(plc.ns, ["Temp"])
    cfg = {k: v for k, v in ua_driver(plc.endpoint).items() if not k.startswith("reconnect")}
    loaded = write_config(tmp_path, "plc", cfg, tags)
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    events: list[tuple[float, ConnState, str | None]] = []
    drv.on_state_change(lambda st: events.append((time.monotonic(), st.state, st.last_error)))
    sink = Collector()
    await drv.start(sink)
    try:
        await sink.wait_for(lambda: bool(sink.good("M1.temp")))
        await plc.stop()
        await wait_until(lambda: drv.state.state is ConnState.RECONNECTING)
        failed = drv.stats.errors
        await wait_until(lambda: drv.stats.errors >= failed + 6)  # backoff is at its cap
        await plc.start(values={"Temp": 42.5})
        back = time.monotonic()
        await sink.wait_for(lambda: any(s.value == 42.5 for s in sink.good("M1.temp")))
        resumed = time.monotonic() - back
        connected_at = next(t for t, st, _ in events if st is ConnState.CONNECTED and t > back)
        print(f"\nOPC UA reconnect: connected {connected_at - back:.2f} s and first value "
              f"{resumed:.2f} s after the server was back (cap 1 s)")
        assert resumed <= 2.0
        # the connected event carries no error; the stats keep the count and newest reason
        assert [e for _, st, e in events if st is ConnState.CONNECTED] == [None, None]
        assert drv.state.last_error is None
        assert drv.stats.errors > failed and drv.stats.last_failure
    finally:
        await drv.stop()


async def test_refused_password_stops_the_driver_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    server_cert, server_key = make_cert(pki, "server", "urn:freeopcua:python:server")
    make_cert(pki, "client", "urn:loopline:test-client")

    async def setup(s: Server) -> None:
        await s.load_certificate(str(server_cert))
        await s.load_private_key(str(server_key))
        s.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])

    users = OnlyOperator()
    plc = Plc(free_port(), user_manager=users)
    await plc.start(setup=setup)
    monkeypatch.setenv("LOOPLINE_TEST_OPC_PW", "wrong")
    secure = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": "pki/client.pem",
        "private_key": "pki/client-key.pem",
        "server_certificate": "pki/server.pem",
        "username": "operator",
        "password_env": "LOOPLINE_TEST_OPC_PW",
        "auth_attempts": 3,
    }
    loaded = write_config(tmp_path, "plc", ua_driver(plc.endpoint, **secure),
                          ua_tags(plc.ns, ["Temp"]))
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    sink = Collector()
    await drv.start(sink)
    try:
        await wait_until(lambda: drv.state.state is ConnState.DOWN)
        # three logins, not one per backoff step until someone notices the lock-out
        assert [u for u in users.seen if u[0] == "operator"] == [("operator", "wrong")] * 3
        st = drv.status()
        assert "authentication rejected" in str(st["last_error"])
        assert "BadUserAccessDenied" in str(st["gave_up"]) and st["errors"] == 3
        # every tag Bad with the reason: the data-quality alarm names it
        m = sink.last("M1.temp")
        assert m is not None and m.quality is Quality.BAD
        assert "authentication rejected" in (m.reason or "")
        await drv.stop()
        assert drv.state.state is ConnState.DOWN and drv.state.last_error == drv.gave_up
    finally:
        await drv.stop()
        await plc.stop()
