"""Read config.toml into a validated ``Config`` or a short message a person can act on.

Errors name the file, the key path, the line where it can be found, what was expected
and what was found. They never carry a traceback: ``ConfigError`` is caught by the CLI.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config.schema import At, Config, Equipment, Line, Tag

DEFAULT_CONFIG = "config.toml"


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is the message for the user."""


@dataclass(frozen=True)
class ResolvedTag:
    """A tag with its place in the plant and its address expanded."""

    id: str  # "<equipment>.<name>" or "plant.<name>"
    name: str
    equipment_id: str | None
    line_id: str | None
    driver_id: str
    spec: Tag


@dataclass
class LoadedConfig:
    """The validated config plus what the loader derived from it."""

    path: Path
    config: Config
    base_dir: Path
    db_url: str
    db_path: Path | None
    tags: list[ResolvedTag] = field(default_factory=list)

    def resolve(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else (self.base_dir / q).resolve()

    @property
    def archive_dir(self) -> Path:
        return self.resolve(self.config.store.archive_dir)

    @property
    def spill_dir(self) -> Path:
        return self.resolve(self.config.store.spill_dir)

    @property
    def models_dir(self) -> Path:
        return self.resolve(self.config.ml.models_dir)

    @property
    def master_data_path(self) -> Path:
        return self.resolve(self.config.master_data)

    def equipment(self) -> list[tuple[Line, Equipment]]:
        return [(ln, eq) for ln in self.config.lines for eq in ln.equipment]

    def tags_for(self, equipment_id: str) -> list[ResolvedTag]:
        return [t for t in self.tags if t.equipment_id == equipment_id]

    def tag(self, tag_id: str) -> ResolvedTag:
        for t in self.tags:
            if t.id == tag_id:
                return t
        raise KeyError(tag_id)


_BASE_RE = re.compile(r"\{base\+(\d+)\}")


def _expand_address(address: str, line: Line, eq: Equipment) -> str:
    out = _BASE_RE.sub(lambda m: str(eq.register_base + int(m.group(1))), address)
    return out.replace("{base}", str(eq.register_base)).format_map(
        {"line": line.id, "equipment": eq.id}
    )


def _template_tags(cfg: Config, name: str) -> list[Tag]:
    tpl = cfg.templates.get(name)
    if tpl is None:
        return []
    return [*(_template_tags(cfg, tpl.extends) if tpl.extends else []), *tpl.tags]


def expand_tags(cfg: Config) -> list[ResolvedTag]:
    """Template tags plus per-equipment tags, addresses filled in; later names win."""
    out: list[ResolvedTag] = []
    for line in cfg.lines:
        for eq in line.equipment:
            by_name: dict[str, Tag] = {}
            for t in [*_template_tags(cfg, eq.template or eq.type), *eq.tags]:
                by_name[t.name] = t
            driver = eq.driver or line.driver
            for t in by_name.values():
                spec = t.model_copy(update={"address": _expand_address(t.address, line, eq)})
                out.append(ResolvedTag(f"{eq.id}.{t.name}", t.name, eq.id, line.id, driver, spec))
    for pt in cfg.plant_tags:
        spec = Tag(**pt.model_dump(exclude={"driver"}))
        out.append(ResolvedTag(f"plant.{pt.name}", pt.name, None, None, pt.driver, spec))
    seen: set[str] = set()
    for t in out:
        if t.id in seen:
            raise ValueError(f"tag id {t.id!r} is defined twice")
        seen.add(t.id)
    return out


def load_config(path: str | os.PathLike[str] | None = None, db: str | None = None) -> LoadedConfig:
    """Load, validate and expand a config; ``db`` overrides the store location."""
    p = Path(path or os.environ.get("LOOPLINE_CONFIG") or DEFAULT_CONFIG)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot be read ({e.strerror})") from None
    except ValueError as e:  # a NUL in the path
        raise ConfigError(f"{str(p)!r}: not a usable file name ({e})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(toml_error(p, text, e)) from None
    try:
        cfg = Config.model_validate(raw)
        tags = expand_tags(cfg)
    except ValidationError as e:
        raise ConfigError(format_validation_error(p, text, e)) from None
    except (ValueError, KeyError, IndexError) as e:
        raise ConfigError(f"{p}: {e}") from None
    base = p.resolve().parent
    try:
        db_url, db_path = _store_location(cfg, base, db)
    except ValueError as e:  # a NUL in --db or $LOOPLINE_DB
        raise ConfigError(f"store {db!r}: not a usable file name ({e})") from None
    if db_path is None and cfg.store.password_env:
        db_url = _with_password(db_url, cfg.store.password_env, p)
    if db or os.environ.get("LOOPLINE_DB"):
        # a store named on the command line brings its own spill buffer and archive, so
        # two stores (a test, an evaluation arm) never share them: beside a file, or
        # data/<database>-spill for a server database
        stem = db_path.with_suffix("") if db_path is not None else \
            base / "data" / _database_name(db_url)
        cfg.store.spill_dir = str(stem) + "-spill"
        cfg.store.archive_dir = str(stem) + "-history"
    return LoadedConfig(
        path=p, config=cfg, base_dir=base, db_url=db_url, db_path=db_path, tags=tags
    )


def _database_name(url: str) -> str:
    """A server URL's database name, safe as a folder name."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        name = make_url(url).database or "store"
    except ArgumentError:
        name = "store"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _with_password(url: str, env: str, path: Path) -> str:
    """The server URL with the password from ``[store] password_env`` filled in."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError as e:
        raise ConfigError(f"{path}: store url is not valid: {e}") from None
    if u.password:
        raise ConfigError(f"{path}: store: the URL has a password and [store] password_env "
                          f"is set; give one of them (the variable: keep it out of files)")
    value = os.environ.get(env)
    if value is None:
        raise ConfigError(f"{path}: store: environment variable {env} ([store] password_env) "
                          "is not set")
    return u.set(password=value).render_as_string(hide_password=False)


def _store_location(cfg: Config, base: Path, override: str | None) -> tuple[str, Path | None]:
    target = override or os.environ.get("LOOPLINE_DB") or cfg.store.url or cfg.store.path
    if "://" in target:
        if target.startswith("sqlite:///"):
            fp = Path(target.removeprefix("sqlite:///"))
            fp = fp if fp.is_absolute() else (base / fp).resolve()
            return f"sqlite:///{fp}", fp
        return target, None
    fp = Path(os.path.expanduser(target))
    fp = fp if fp.is_absolute() or override else (base / fp)
    fp = fp.resolve()
    return f"sqlite:///{fp}", fp


# ---------------------------------------------------------------- error messages

_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def toml_error(path: Path, text: str, e: tomllib.TOMLDecodeError) -> str:
    """``file:line: TOML syntax error: ...`` — the line also for a file cut short."""
    msg = str(e)
    m = _AT_LINE.search(msg)
    line = int(m.group(1)) if m else (text.count("\n") + 1 if "end of document" in msg
                                      else None)
    return f"{path}:{line}: TOML syntax error: {msg}" if line else \
        f"{path}: TOML syntax error: {msg}"



def format_validation_error(path: Path, text: str, err: ValidationError) -> str:
    """One line per problem: file:line: key.path: expected ..., found ..."""
    lines_by_key = key_lines(text)
    msgs = []
    # a misspelt key first: its "missing required key" twin is the consequence
    errors = sorted(err.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    for e in errors[:8]:
        loc = _without_union_tags(tuple(e["loc"]))
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, At):  # a cross-field check that knows its key
            loc = (*loc, *cause.loc)
        keypath = _fmt_loc(loc)
        line = _find_line(lines_by_key, loc)
        where = f"{path}:{line}" if line else f"{path}"
        found = e.get("input")
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = f"unknown key {keypath!r} (not part of the schema; check the spelling)"
        elif kind == "missing":
            msg = f"missing required key {keypath!r}"
        elif kind == "value_error" or kind == "assertion_error":
            m = e["msg"].removeprefix("Value error, ")
            msg = f"{keypath}: {m}" if keypath else m
        elif kind == "union_tag_not_found":
            disc = str((e.get("ctx") or {}).get("discriminator", "kind")).strip("'\"")
            near = difflib.get_close_matches(disc, [str(k) for k in found or {}], 1, 0.6) \
                if isinstance(found, dict) else []
            msg = (f"{keypath}.{disc}: missing required key '{disc}'"
                   + (f" (found {near[0]!r}: a misspelling?)" if near else ""))
        elif kind == "finite_number":
            msg = f"{keypath}: expected a finite number, found {_show(found)}"
        else:
            msg = f"{keypath}: expected {_expected(e)}, found {_show(found)}"
        msgs.append(f"{where}: {msg}")
    more = len(err.errors()) - len(msgs)
    if more > 0:
        msgs.append(f"... and {more} more problem(s)")
    return "\n".join(msgs)


_UNION_TAGS = {"opcua", "modbus", "mqtt"}


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminator step (``drivers.opcua.opcua.x`` → ``drivers.opcua.x``)
    but keep a driver *named* like a kind: only a tag right after a drivers key goes."""
    out: list[Any] = []
    for i, x in enumerate(loc):
        if isinstance(x, str) and x in _UNION_TAGS and i >= 2 and loc[i - 2] == "drivers":
            continue
        out.append(x)
    return tuple(out)


def _fmt_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for x in loc:
        out += f"[{x}]" if isinstance(x, int) else (f".{x}" if out else str(x))
    return out


def _show(v: Any) -> str:
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "a list"
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _expected(e: dict[str, Any]) -> str:
    m = e["msg"]
    ctx = e.get("ctx") or {}
    if "expected" in ctx:
        return f"one of {ctx['expected']}"
    if e["type"] == "string_pattern_mismatch":
        if ctx.get("pattern") == r"\S":
            return "a text that is not blank"
        return f"text matching {ctx.get('pattern')}"
    if e["type"] == "string_too_short" and ctx.get("min_length") == 1:
        return "a text that is not empty"
    m = m.removeprefix("Input should be ").removeprefix("Value should be ")
    return m[0].lower() + m[1:] if m else "a valid value"


_HDR = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.]+)\s*=")


def key_lines(text: str) -> dict[tuple[Any, ...], int]:
    """Map key paths (with array indices) to the 1-based line that defines them.

    Covers tables, arrays of tables and plain keys, which is what config.toml uses;
    keys inside multi-line inline values are attributed to their parent.
    """
    out: dict[tuple[Any, ...], int] = {}
    counts: dict[tuple[Any, ...], int] = {}
    current: tuple[Any, ...] = ()
    for n, raw in enumerate(text.splitlines(), 1):
        m = _HDR.match(raw)
        if m:
            parts = [p.strip().strip("\"'") for p in m.group(2).split(".")]
            path: tuple[Any, ...] = ()
            for i, part in enumerate(parts):
                path = (*path, part)
                last = i == len(parts) - 1
                if m.group(1) == "[[" and last:
                    idx = counts.get(path, -1) + 1
                    counts[path] = idx
                    # a new element resets the counters of arrays nested in it
                    for k in [k for k in counts if len(k) > len(path) and k[: len(path)] == path]:
                        del counts[k]
                    path = (*path, idx)
                elif not last and path in counts:
                    path = (*path, counts[path])
            current = path
            out.setdefault(current, n)
            continue
        k = _KEY.match(raw)
        if k:
            keys = tuple(p.strip().strip("\"'") for p in k.group(1).split("."))
            out.setdefault((*current, *keys), n)
    return out


def _find_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for i in range(len(loc), 0, -1):
        if loc[:i] in lines:
            return lines[loc[:i]]
    return None
