"""OPC UA driver on asyncua 2.1: subscriptions, typed writes with read-back, own reconnect.

Tags are spread over ``sessions`` client sessions (each has its own publish loop,
which is what limits throughput) and, within a session, over subscriptions of at
most ``max_items_per_subscription`` monitored items. Notifications are turned into
Samples straight in the publish callback (no task per value) and handed to the
sink as one list per publish response.

Reconnect is ours, not asyncua's: on a lost session every tag of that session gets
an explicit Bad "connection lost" marker, the client is discarded, and a fresh
client reconnects with exponential backoff (``reconnect_min_s``..``reconnect_max_s``)
and recreates the subscriptions, so the server sends current values again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription
from asyncua.crypto import security_policies

from core.config.loader import ResolvedTag
from core.config.schema import OpcUaDriver as OpcUaDriverCfg
from core.samples import Quality, Sample, Value
from drivers.base import (
    CONNECTION_LOST,
    Backoff,
    ConnState,
    Driver,
    DriverAuthError,
    DriverConfigError,
    DriverError,
    Sink,
    WriteResult,
    compare_read_back,
    config_password,
    config_path,
)
from drivers.codec import float32_roundtrip, to_engineering
from drivers.opcua_nodes import namespace_uri, parse_node_id, resolve
from drivers.opcua_values import (
    NUMERIC_TYPES,
    VARIANT_TYPES,
    sample_from_datavalue,
    to_variant,
)

log = logging.getLogger("loopline.drivers.opcua")

_MONITOR_BATCH = 1000  # monitored items per CreateMonitoredItems request


class _FastSubscription(Subscription):
    """Hands whole publish responses to the session instead of one task per value."""

    def __init__(self, server: Any, params: ua.CreateSubscriptionParameters, on_data: Any) -> None:
        super().__init__(server, params, handler=object())  # type: ignore[arg-type]
        self._on_data = on_data

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        msg = publish_result.NotificationMessage
        if msg.NotificationData is None:
            return
        self.last_sequence_number = int(msg.SequenceNumber)
        self._on_data(msg.NotificationData)


class _Session:
    """One client session serving a share of the driver's tags."""

    def __init__(self, driver: OpcUaDriver, index: int, tags: list[ResolvedTag]) -> None:
        self.driver = driver
        self.index = index
        self.tags = tags
        self.client: Client | None = None
        self.subs: list[_FastSubscription] = []
        self.handles: dict[int, ResolvedTag] = {}
        self.sub_of: dict[str, _FastSubscription] = {}
        self.nodeids: dict[str, ua.NodeId] = {}  # resolved on this connection
        self.lost = asyncio.Event()
        self.connected = False
        self.ever_connected = False
        self.last_error: str | None = None
        self.task: asyncio.Task[None] | None = None

    # -------------------------------------------------------- connection

    async def open(self) -> None:
        d = self.driver
        client = await d._new_client()
        self.lost = asyncio.Event()
        lost = self.lost

        async def on_lost(exc: Exception) -> None:
            self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            await asyncio.wait_for(client.connect(auto_reconnect=False), d.cfg.timeout_s * 2 + 1.0)
        except asyncio.CancelledError:  # stopped mid-connect: drop the socket, no awaiting
            with contextlib.suppress(Exception):
                client.disconnect_socket()
            raise
        except Exception as e:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 1.0)
            msg = str(e) or type(e).__name__
            refused = identity_refusal(e)
            if refused:
                raise DriverAuthError(f"{d.cfg.endpoint}: {refused}: {msg}") from None
            raise DriverError(f"{d.cfg.endpoint}: {msg}") from None
        self.client = client

    async def close(self) -> None:
        client, self.client = self.client, None
        self.subs = []
        self.connected = False
        if client is None:
            return
        client.connection_lost_callback = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2.0)

    async def subscribe(self) -> None:
        d = self.driver
        client = self.client
        assert client is not None
        cfg = d.cfg
        self.handles = {}
        self.sub_of = {}
        self.subs = []
        per_sub = cfg.max_items_per_subscription
        failures: list[Sample] = []
        self.nodeids = {}
        parsed = d.nodes
        namespaces: list[str] = []
        if any(namespace_uri(parsed[t.id]) for t in self.tags):
            # nsu= ids: the index is whatever the server's table says on this connection
            namespaces = list(await client.get_namespace_array())
        for tag in self.tags:
            try:
                self.nodeids[tag.id] = resolve(parsed[tag.id], namespaces)
            except ValueError as e:
                d.stats.note_error(str(e))
                failures.append(Sample(tag.id, d.now(), None, Quality.BAD, str(e)))
        next_handle = 1
        for start in range(0, len(self.tags), per_sub):
            chunk = self.tags[start : start + per_sub]
            params = ua.CreateSubscriptionParameters()
            params.RequestedPublishingInterval = float(cfg.publishing_interval_ms)
            params.RequestedLifetimeCount = 10000
            params.RequestedMaxKeepAliveCount = client.get_keepalive_count(
                cfg.publishing_interval_ms
            )
            params.MaxNotificationsPerPublish = 0  # no limit: one response carries everything
            params.PublishingEnabled = True
            params.Priority = 0
            sub = _FastSubscription(client.uaclient.session, params, self._on_data)
            results = await sub.init()
            revised = client.get_subscription_revised_params(params, results)
            if revised:
                await sub.update(revised)
            self.subs.append(sub)
            for b in range(0, len(chunk), _MONITOR_BATCH):
                batch = chunk[b : b + _MONITOR_BATCH]
                reqs = []
                for tag in batch:
                    nodeid = self.nodeids.get(tag.id)
                    if nodeid is None:
                        continue  # its namespace is not on the server (marked Bad above)
                    handle = next_handle
                    next_handle += 1
                    self.handles[handle] = tag
                    reqs.append(self._request(nodeid, handle, tag))
                if not reqs:
                    continue
                mids = await sub.create_monitored_items(reqs)
                for req, mid in zip(reqs, mids, strict=True):
                    handle = req.RequestedParameters.ClientHandle
                    if not isinstance(mid, ua.StatusCode):
                        self.sub_of[self.handles[handle].id] = sub
                        continue
                    tag = self.handles.pop(handle)
                    d.stats.note_error(f"cannot monitor {tag.spec.address}: {mid.name}")
                    failures.append(
                        Sample(
                            tag.id,
                            self.driver.now(),
                            None,
                            Quality.BAD,
                            f"cannot monitor {tag.spec.address}: {mid.name}",
                        )
                    )
        if failures:
            d._emit(failures, fresh=False)

    def _request(
        self, nodeid: ua.NodeId, handle: int, tag: ResolvedTag
    ) -> ua.MonitoredItemCreateRequest:
        cfg = self.driver.cfg
        rv = ua.ReadValueId()
        rv.NodeId = nodeid
        rv.AttributeId = ua.AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = handle
        mp.SamplingInterval = float(cfg.sampling_interval_ms)
        mp.QueueSize = cfg.queue_size
        mp.DiscardOldest = True
        deadband = tag.spec.deadband or cfg.deadband
        if deadband > 0 and tag.spec.data_type in NUMERIC_TYPES:
            f = ua.DataChangeFilter()
            f.Trigger = ua.DataChangeTrigger.StatusValue
            f.DeadbandType = ua.DeadbandType.Absolute
            f.DeadbandValue = float(deadband)
            mp.Filter = f
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = rv
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = mp
        return req

    def _on_data(self, notification_data: list[Any]) -> None:
        handles = self.handles
        out: list[Sample] = []
        for notif in notification_data:
            if isinstance(notif, ua.DataChangeNotification):
                for item in notif.MonitoredItems:
                    tag = handles.get(item.ClientHandle)
                    if tag is not None:
                        out.append(sample_from_datavalue(tag, item.Value))
            elif isinstance(notif, ua.StatusChangeNotification):
                st = notif.Status
                if st is not None and not st.is_good():
                    self.last_error = f"subscription status {st.name}"
                    self.lost.set()
        self.driver._emit(out)

    # -------------------------------------------------------- supervision

    async def run(self) -> None:
        """Connect, subscribe, wait for loss, mark the gap, back off, repeat.

        A refused identity or certificate is retried ``auth_attempts`` times (a server's
        lock-out policy counts failed logins), then the driver gives up.
        """
        d = self.driver
        backoff = Backoff(d.cfg.reconnect_min_s, d.cfg.reconnect_max_s)
        while not d._stopping and d.gave_up is None:
            try:
                if self.client is None:
                    await self.open()
                await self.subscribe()
            except asyncio.CancelledError:
                raise
            except DriverConfigError as e:  # retrying cannot help: say so and stay down
                self.last_error = str(e)
                await self.close()
                d._give_up(str(e))
                return
            except Exception as e:
                self.last_error = str(e) or type(e).__name__
                d.stats.note_error(self.last_error)
                await self.close()
                if isinstance(e, DriverAuthError):
                    d._refusals += 1  # counted per driver: every session logs in as the same user
                    if d._refusals >= d.cfg.auth_attempts:
                        d._give_up(f"{e} (stopped after {d._refusals} refused attempts; fix "
                                   "the credentials or certificates, then restart)", count=False)
                        return
                d._session_changed(self)
                await asyncio.sleep(backoff.next())
                continue
            d._refusals = 0
            if self.ever_connected:
                d.stats.reconnects += 1
            self.connected = self.ever_connected = True
            self.last_error = None
            d._session_changed(self)
            backoff.reset()
            await self.lost.wait()
            if d._stopping:
                return
            d.stats.note_error(self.last_error or CONNECTION_LOST)
            self.connected = False
            d._mark_lost([t.id for t in self.tags], CONNECTION_LOST)
            d._session_changed(self)
            await self.close()
            await asyncio.sleep(backoff.next())


class OpcUaDriver(Driver):
    kind = "opcua"

    def __init__(
        self,
        driver_id: str,
        cfg: OpcUaDriverCfg,
        tags: Sequence[ResolvedTag],
        base_dir: Path | None = None,
    ) -> None:
        super().__init__(driver_id, tags)
        self.cfg = cfg
        self.base_dir = base_dir or Path.cwd()
        self.nodes: dict[str, ua.NodeId] = {}
        for t in tags:
            problem = tag_problem(t)
            if problem:
                raise DriverConfigError(problem)
            self.nodes[t.id] = parse_node_id(t.spec.address)
        tag_list = list(tags)
        n = max(1, min(cfg.sessions, len(tag_list) or 1))
        size = math.ceil(len(tag_list) / n) if tag_list else 0
        self.sessions = [_Session(self, i, tag_list[i * size : (i + 1) * size]) for i in range(n)]
        self._session_of = {t.id: s for s in self.sessions for t in s.tags}
        self._stopping = False
        self._refusals = 0  # refused logins in a row, connect() included

    # ------------------------------------------------------------ client set-up

    def _path(self, p: str) -> str:
        return config_path(self.base_dir, p)

    def _password(self) -> str | None:
        return config_password(self.id, self.cfg)

    async def _new_client(self) -> Client:
        cfg = self.cfg
        client = Client(cfg.endpoint, timeout=cfg.timeout_s, watchdog_intervall=1.0)
        client.name = f"loopline {self.id}"
        client.description = client.name
        client.session_timeout = 120_000  # the server drops our orphaned sessions after 2 min
        password = self._password()
        if password and cfg.security_mode != "SignAndEncrypt":
            raise DriverConfigError(
                f"driver {self.id}: refusing to send a password over an unencrypted channel "
                "(set security_mode = 'SignAndEncrypt')"
            )
        if cfg.security_policy != "None":
            if not cfg.certificate or not cfg.private_key:
                raise DriverConfigError(
                    f"driver {self.id}: security_policy {cfg.security_policy} needs "
                    "certificate and private_key"
                )
            cert = self._path(cfg.certificate)
            key = self._path(cfg.private_key)
            for label, p in (("certificate", cert), ("private_key", key)):
                if not Path(p).is_file():
                    raise DriverConfigError(f"driver {self.id}: {label} {p} does not exist")
            uri = _application_uri(cert)
            if uri:
                client.application_uri = uri
            policy = getattr(security_policies, f"SecurityPolicy{cfg.security_policy}")
            mode = getattr(ua.MessageSecurityMode, cfg.security_mode)
            server_cert = self._path(cfg.server_certificate) if cfg.server_certificate else None
            try:
                await client.set_security(
                    policy, cert, key, server_certificate=server_cert, mode=mode
                )
            except Exception as e:
                raise DriverError(f"driver {self.id}: security set-up failed: {e}") from None
        if cfg.username:
            client.set_user(cfg.username)
        if password:
            if client.security_policy.Mode != ua.MessageSecurityMode.SignAndEncrypt:
                raise DriverConfigError(
                    f"driver {self.id}: refusing to send a password over an unencrypted channel"
                )
            client.set_password(password)
        return client

    # ------------------------------------------------------------ interface

    async def connect(self) -> None:
        self._set_state(ConnState.CONNECTING)

        async def one(s: _Session) -> None:
            if s.client is None:
                await s.open()

        results = await asyncio.gather(*(one(s) for s in self.sessions), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for e in errors:
                self.stats.note_error(str(e) or type(e).__name__)
                if isinstance(e, DriverAuthError):
                    self._refusals += 1
            for s in self.sessions:
                await s.close()
            msg = str(errors[0]) or type(errors[0]).__name__
            if isinstance(errors[0], DriverError):
                self._set_state(ConnState.CONNECTING, msg)
                raise errors[0]
            self._set_state(ConnState.CONNECTING, msg)
            raise DriverError(msg)

    async def start(self, sink: Sink) -> None:
        if any(s.task is not None for s in self.sessions):
            raise DriverError(f"driver {self.id} is already started")
        self._begin(sink)
        self._stopping = False
        if self._state.state is ConnState.DOWN:
            self._set_state(ConnState.CONNECTING)
        for s in self.sessions:
            s.task = asyncio.create_task(s.run(), name=f"opcua-{self.id}-{s.index}")

    async def stop(self) -> None:
        self._stopping = True
        for s in self.sessions:
            s.lost.set()
            if s.task is not None:
                s.task.cancel()
        for s in self.sessions:
            if s.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await s.task
                s.task = None
            await s.close()
        self._stopped()

    def _fresh_mono(self, tag_id: str) -> float | None:
        """An unchanged value is current while its subscription keeps publishing.

        OPC UA only reports changes; the server's keep-alives confirm the others,
        so a constant lot number is not stale while the session is healthy.
        """
        t = self._last_mono.get(tag_id)
        s = self._session_of.get(tag_id)
        if t is None or s is None or not s.connected:
            return t
        sub = s.sub_of.get(tag_id)
        if sub is not None and sub.last_publish_at is not None and sub.last_publish_at > t:
            return sub.last_publish_at
        return t

    def _session_changed(self, s: _Session) -> None:
        if self._stopping or self.gave_up is not None:
            return
        if all(x.connected for x in self.sessions):
            self._set_state(ConnState.CONNECTED)
            return
        errors = [x.last_error for x in self.sessions if x.last_error]
        err = errors[0] if errors else None
        if any(x.ever_connected for x in self.sessions):
            self._set_state(ConnState.RECONNECTING, err)
        else:
            self._set_state(ConnState.CONNECTING, err)

    async def write(self, tag_id: str, value: Value) -> WriteResult:
        rt = self.tags.get(tag_id)
        if rt is None:
            return self._write_failed(tag_id, value, f"unknown tag {tag_id!r} on driver {self.id}")
        if not rt.spec.writable:
            return self._write_failed(tag_id, value, f"tag {tag_id} is not writable (config)")
        s = self._session_of[tag_id]
        client = s.client
        if client is None or not s.connected:
            return self._write_failed(tag_id, value, "not connected")
        spec = rt.spec
        try:
            variant = to_variant(value, spec.data_type, spec.scale, spec.offset)
        except ValueError as e:
            return self._write_failed(tag_id, value, str(e))
        nodeid = s.nodeids.get(tag_id)
        if nodeid is None:
            return self._write_failed(tag_id, value, "node id not resolved on this server")
        node = client.get_node(nodeid)
        try:
            await node.write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))
            dv = await node.read_attribute(ua.AttributeIds.Value)
        except ua.UaStatusCodeError as e:
            name = ua.StatusCode(e.code).name if hasattr(e, "code") else str(e)
            return self._write_failed(tag_id, value, f"server refused: {name}")
        except Exception as e:  # connection trouble mid-write: report, never raise
            return self._write_failed(tag_id, value, f"write failed: {e or type(e).__name__}")
        back = sample_from_datavalue(rt, dv)
        self.stats.writes += 1
        expected: Value = variant.Value
        if isinstance(expected, int | float) and not isinstance(expected, bool):
            if spec.data_type == "float32":
                expected = float32_roundtrip(expected)
            expected = to_engineering(expected, spec.scale, spec.offset)
        ok = back.quality is not Quality.BAD and compare_read_back(
            spec.data_type, expected, back.value
        )
        if not ok:
            self.stats.write_failures += 1
        return WriteResult(
            tag_id,
            ok,
            value,
            back.value,
            None
            if ok
            else f"read-back {back.value!r} ({back.reason or back.quality.name}) "
            f"differs from written {value!r}",
            mismatch=not ok,
        )

    def _write_failed(self, tag_id: str, value: Value, error: str) -> WriteResult:
        self.stats.writes += 1
        self.stats.write_failures += 1
        return WriteResult(tag_id, False, value, None, error)


# status codes that say "not you", not "not now": a retry sends the same identity again
REFUSALS = (
    "BadUserAccessDenied", "BadIdentityToken", "BadCertificate", "BadSecurityChecksFailed",
    "BadSecurityPolicyRejected", "BadApplicationSignatureInvalid", "BadUserSignatureInvalid",
    "BadNoValidCertificates", "BadSecurityModeRejected",
)


def identity_refusal(e: BaseException) -> str | None:
    """"authentication rejected" / "certificate rejected" when the server refused who we
    are, else None (a network or server problem, worth retrying)."""
    code = getattr(e, "code", None)
    names = [str(e), type(e).__name__]
    if isinstance(code, int):
        with contextlib.suppress(Exception):
            names.append(ua.StatusCode(code).name)
    text = " ".join(names)
    for name in REFUSALS:
        if name in text:
            if "Certificate" in name or "Security" in name or "Signature" in name:
                return "certificate or security rejected"
            return "authentication rejected"
    return None


def tag_problem(tag: ResolvedTag) -> str | None:
    """Why this tag cannot be served over OPC UA, or None (also used by config check)."""
    spec = tag.spec
    if spec.data_type not in VARIANT_TYPES:
        return f"tag {tag.id}: data_type {spec.data_type} is not supported over OPC UA"
    try:
        parse_node_id(spec.address)
    except ValueError as e:
        return f"tag {tag.id}: {e}"
    if spec.deadband and spec.data_type not in NUMERIC_TYPES:
        return f"tag {tag.id}: a deadband needs a numeric data_type, not {spec.data_type}"
    return None


def _application_uri(cert_path: str) -> str | None:
    """The URI in the client certificate's SubjectAltName: servers check it matches."""
    try:
        from cryptography import x509

        data = Path(cert_path).read_bytes()
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
        return uris[0] if uris else None
    except Exception:
        return None
