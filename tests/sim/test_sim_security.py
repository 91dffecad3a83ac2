"""Optional OPC UA security: Basic256Sha256 SignAndEncrypt, generated certs, user/password."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from runtime.twin import free_port
from sim.opcua_server import Security
from sim.runner import Twin, TwinOptions


async def _client(endpoint: str, pki: Path, password: str) -> Client:
    c = Client(endpoint)
    c.application_uri = "urn:test:client"
    await c.set_security_string(
        f"Basic256Sha256,SignAndEncrypt,{pki / 'client-cert.der'},{pki / 'client-key.pem'}")
    c.set_user("operator")
    c.set_password(password)
    return c


async def test_secure_endpoint_with_user_password(cfg, master, tmp_path: Path) -> None:
    opts = TwinOptions(seed=7, speed=60, opcua_port=free_port(), modbus=False,
                       start=datetime(2026, 1, 5, 6, tzinfo=UTC),
                       security=Security(tmp_path / "twin", "operator", "s3cret"))
    twin = Twin(cfg, master, opts)
    task = asyncio.create_task(twin.run())
    ready = asyncio.create_task(twin.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        assert (tmp_path / "twin" / "twin-cert.der").exists()
        await setup_self_signed_certificate(
            tmp_path / "client-key.pem", tmp_path / "client-cert.der", "urn:test:client",
            "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "test client"})
        c = await _client(twin.opcua.endpoint, tmp_path, "s3cret")
        async with c:
            v = await c.get_node("ns=2;s=A.A-LATHE1.VibrationRMS").read_value()
            assert isinstance(v, float)
            sp = c.get_node("ns=2;s=A.A-LATHE1.FeedSP")
            await sp.write_value(ua.DataValue(ua.Variant(0.22, ua.VariantType.Float)))
            assert twin.plant.machines["A-LATHE1"].sp["feed_sp"].value == pytest.approx(0.22)
        wrong = await _client(twin.opcua.endpoint, tmp_path, "guess")
        with pytest.raises(ua.UaError):
            async with wrong:
                pass
        with pytest.raises(ua.UaError):  # no unencrypted endpoint is offered
            async with Client(twin.opcua.endpoint):
                pass
    finally:
        twin.stop()
        await asyncio.wait_for(task, timeout=30)
