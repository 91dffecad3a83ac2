"""Everything a driver would refuse at start, found without connecting to anything.

``config check`` and ``run`` both call ``device_problems`` so a config that passes
the check never fails later on an address, a type or a missing certificate. Each
problem is one line naming the tag or driver, what is wrong and what is expected.
The same per-tag checks run in the drivers' constructors, so the two cannot drift.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.config.loader import LoadedConfig, ResolvedTag
from core.config.schema import ModbusDriver as ModbusDriverCfg
from core.config.schema import MqttDriver as MqttDriverCfg
from core.config.schema import OpcUaDriver as OpcUaDriverCfg
from drivers.base import DriverConfigError


def device_problems(loaded: LoadedConfig) -> list[str]:
    """One line per problem over all drivers, tags and equipment; empty when usable."""
    cfg = loaded.config
    out: list[str] = []
    per_tag: list[tuple[ResolvedTag, str]] = []
    by_driver: dict[str, list[ResolvedTag]] = {}
    for t in loaded.tags:
        by_driver.setdefault(t.driver_id, []).append(t)
    for did, dcfg in cfg.drivers.items():
        tags = by_driver.get(did, [])
        if isinstance(dcfg, OpcUaDriverCfg):
            out += _opcua_problems(did, dcfg, tags, loaded.base_dir, per_tag)
        elif isinstance(dcfg, MqttDriverCfg):
            out += _mqtt_problems(did, dcfg, tags, loaded.base_dir, per_tag)
        else:
            _modbus_problems(did, dcfg, tags, per_tag)
    for t in loaded.tags:
        if t.spec.scale == 0:
            per_tag.append((t, f"tag {t.id}: scale = 0 makes every value {t.spec.offset:g}; "
                            "give the factor from raw to engineering units"))
    out = _grouped(per_tag) + out
    for line, eq in loaded.equipment():
        did = eq.driver or line.driver
        if eq.unit_id is not None and cfg.drivers[did].kind != "modbus":
            out.append(f"equipment {eq.id}: unit_id is a Modbus device id, but its driver "
                       f"{did!r} is {cfg.drivers[did].kind}")
    return out


def _grouped(per_tag: list[tuple[ResolvedTag, str]]) -> list[str]:
    """A template's mistake once, not once per machine: same tag name, same message
    (with the tag's id and address taken out) -> one line naming the others."""
    groups: dict[tuple[str, str], list[tuple[ResolvedTag, str]]] = {}
    for t, msg in per_tag:
        key = msg.replace(t.id, "<tag>").replace(t.spec.address, "<address>")
        groups.setdefault((t.name, key), []).append((t, msg))
    out = []
    for items in groups.values():
        msg = items[0][1]
        others = [t.id for t, _ in items[1:]]
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            msg += f" (also {len(others)} more: {shown})"
        out.append(msg)
    return out


def _opcua_problems(did: str, cfg: OpcUaDriverCfg, tags: list[ResolvedTag], base_dir: Path,
                    per_tag: list[tuple[ResolvedTag, str]]) -> list[str]:
    from drivers.opcua import tag_problem

    out: list[str] = []
    for t in tags:
        p = tag_problem(t)
        if p:
            per_tag.append((t, p))
    if cfg.security_policy != "None" and (not cfg.certificate or not cfg.private_key):
        out.append(f"driver {did}: security_policy {cfg.security_policy} needs "
                   "certificate and private_key (the client's own)")
    for label in ("certificate", "private_key", "server_certificate"):
        p = getattr(cfg, label)
        if p:
            q = Path(os.path.expanduser(p))
            q = q if q.is_absolute() else base_dir / q
            if not q.is_file():
                out.append(f"driver {did}: {label} {q} does not exist")
    if cfg.password_env and cfg.password_env not in os.environ and not cfg.password:
        out.append(f"driver {did}: environment variable {cfg.password_env} "
                   "(password_env) is not set")
    return out


def _modbus_problems(did: str, cfg: ModbusDriverCfg, tags: list[ResolvedTag],
                     per_tag: list[tuple[ResolvedTag, str]]) -> None:
    from drivers.modbus_map import parse_address

    groups = {g.name for g in cfg.poll_groups} | {"default"}
    for t in tags:
        try:
            parse_address(t)
        except DriverConfigError as e:
            per_tag.append((t, str(e)))
        if t.spec.poll_group not in groups:
            per_tag.append((t, f"tag {t.id}: poll_group {t.spec.poll_group!r} is not one of "
                            f"driver {did}'s poll_groups ({', '.join(sorted(groups))})"))


def _mqtt_problems(did: str, cfg: MqttDriverCfg, tags: list[ResolvedTag], base_dir: Path,
                   per_tag: list[tuple[ResolvedTag, str]]) -> list[str]:
    from drivers.mqtt import setup_problems, tag_problems

    by_id = {t.id: t for t in tags}
    out: list[str] = []
    for msg in tag_problems(did, cfg, tags):
        tid = msg.removeprefix("tag ").split(":", 1)[0]
        if tid in by_id:
            per_tag.append((by_id[tid], msg))
        else:
            out.append(msg)
    return out + setup_problems(did, cfg, base_dir)
