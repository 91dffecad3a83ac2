"""Fuzzed config and master-data files, and malformed command lines.

Configs and master data: config.toml and data/master.toml mutated one key at a time
(a number replaced by inf, nan, 1e999, 2**64, a negative, a text; a text blanked; a key
misspelt or deleted; an id duplicated; bytes of garbage; the file cut short). Each must
be accepted because it is still valid, or refused with one line naming the file, the
line and the key; never a traceback. Command lines: every command with wrong, missing
and hostile arguments, run in-process through ``console.cli.main`` (fast); plus the
environment errors (read-only, locked, full, missing store) as a user meets them.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import sqlite3
import subprocess
import traceback
from collections.abc import Callable
from pathlib import Path

from bench.chaos import ROOT, Row, cli, cli_batch

BAD_NUMBERS = ["inf", "-inf", "nan", "1e999", "-1e999", "18446744073709551616",
               "-18446744073709551617", "-1", "0", "-0.5", "1e308", '"12"', "true", "[]",
               "{ a = 1 }"]
BAD_TEXTS = ['""', '" "', '"\\t"', "42", '"' + "x" * 300 + '"', '"../../../etc/passwd"',
             '"\\u0000"', '"ünïcødé ✓"']
GARBAGE = ["\x00\x01\x02", "= = =", "[[[", "key = ", "\"unterminated", "}}}", "é=é"]
_KV = re.compile(r'^(\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)(.+?)\s*$')
_NUM = re.compile(r"^-?\d[\d_]*(\.\d+)?([eE][-+]?\d+)?$")


def mutate(text: str, rng: random.Random) -> tuple[str, str | None, str]:
    """One mutation: (new text, the key it touches or None, what was done)."""
    lines = text.splitlines()
    kv = [(i, m) for i, line in enumerate(lines) if (m := _KV.match(line))
          and "{" not in m.group(4)]
    how = rng.choice(["number", "number", "number", "text", "misspell", "delete",
                      "duplicate_id", "garbage", "truncate", "enum"])
    if how == "number":
        nums = [(i, m) for i, m in kv if _NUM.match(m.group(4))]
        i, m = rng.choice(nums)
        bad = rng.choice(BAD_NUMBERS)
        lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{bad}"
        return "\n".join(lines), m.group(2), f"{m.group(2)} = {bad}"
    if how == "text":
        txt = [(i, m) for i, m in kv if m.group(4).startswith('"')]
        i, m = rng.choice(txt)
        bad = rng.choice(BAD_TEXTS)
        lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{bad}"
        return "\n".join(lines), m.group(2), f"{m.group(2)} = {bad[:20]}"
    if how == "misspell":
        i, m = rng.choice(kv)
        lines[i] = f"{m.group(1)}{m.group(2)}_x{m.group(3)}{m.group(4)}"
        return "\n".join(lines), f"{m.group(2)}_x", f"{m.group(2)} misspelt"
    if how == "delete":
        i, m = rng.choice(kv)
        del lines[i]
        return "\n".join(lines), m.group(2), f"{m.group(2)} deleted"
    if how == "duplicate_id":
        ids = [(i, m) for i, m in kv if m.group(2) == "id"]
        (i, m), (_, other) = rng.sample(ids, 2)
        lines[i] = f"{m.group(1)}id{m.group(3)}{other.group(4)}"
        # often across kinds (an area named like a detector): the error may then be the
        # reference it breaks, which names its own key
        return "\n".join(lines), None, f"id {other.group(4)} twice"
    if how == "enum":
        en = [(i, m) for i, m in kv if m.group(2) in ("kind", "type", "data_type", "priority",
                                                        "security_mode", "theme", "model")]
        if en:
            i, m = rng.choice(en)
            lines[i] = f'{m.group(1)}{m.group(2)}{m.group(3)}"bogus_{rng.randrange(99)}"'
            return "\n".join(lines), m.group(2), f"{m.group(2)} = bogus"
    if how == "garbage":
        i = rng.randrange(len(lines))
        lines.insert(i, rng.choice(GARBAGE))
        return "\n".join(lines), None, f"garbage at line {i + 1}"
    cut = rng.randrange(len(text))
    return text[:cut], None, f"cut at byte {cut}"


def _judge(row: Row, case: str, rc: int, err: str, path: Path, key: str | None,
           crashed: str | None) -> bool:
    """True when accepted, or refused with a first line naming file, line and key (a
    config change that breaks a master-data reference is named in the master data)."""
    if crashed:
        row.fail(f"{case}: traceback: {crashed}")
        return False
    if rc == 0:
        return True
    first = err.strip().splitlines()[0] if err.strip() else ""
    if "Traceback" in err:
        row.fail(f"{case}: traceback in the message")
        return False
    master = ROOT / "data" / "master.toml"
    if first.startswith(str(master)) and path != master:
        path, key = master, None
    if not first.startswith(str(path)):
        row.fail(f"{case}: message does not name the file: {first[:160]!r}")
        return False
    if "TOML syntax error" in first:
        if not re.match(rf"^{re.escape(str(path))}:\d+: TOML syntax error", first):
            row.fail(f"{case}: syntax error without its line: {first[:160]!r}")
            return False
        return True
    top_missing = re.match(rf"^{re.escape(str(path))}: missing required key '\w+'$", first)
    if not re.match(rf"^{re.escape(str(path))}:\d+: \S+", first) and not top_missing:
        row.fail(f"{case}: no line number: {first[:160]!r}")
        return False
    if key and key != "id" and key not in first:  # a changed id may break a reference
        row.fail(f"{case}: does not name {key!r}: {first[:160]!r}")
        return False
    return True


def _in_process(fn: Callable[[], int]) -> tuple[int, str, str, str | None]:
    out, err = io.StringIO(), io.StringIO()
    crashed = None
    rc = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = int(fn() or 0)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException as e:
            crashed = f"{type(e).__name__}: {e} | " + \
                traceback.format_exc().strip().splitlines()[-3][:200]
            rc = 99
    return rc, out.getvalue(), err.getvalue(), crashed


def configs(workdir: Path, seed: int, n: int) -> Row:
    rng = random.Random(seed)
    row = Row("fuzzed configs")
    base = (ROOT / "config.toml").read_text(encoding="utf-8")
    base = base.replace('master_data = "data/master.toml"',
                        f'master_data = "{ROOT / "data" / "master.toml"}"')
    accepted = 0
    cases = []
    for i in range(n):
        text, key, what = mutate(base, rng)
        p = workdir / f"fuzz-config-{i}.toml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")
        cases.append((p, key, what))
    results = cli_batch([["config", "check", str(p)] for p, _, _ in cases], workdir)
    for i, ((p, key, what), (rc, _, err, crashed)) in enumerate(zip(cases, results,
                                                                    strict=True)):
        row.trials += 1
        if _judge(row, f"config {i} ({what})", rc, err, p, key, crashed) and rc == 0:
            accepted += 1
    row.note = (f"{row.trials - row.failures}/{row.trials} accepted as valid ({accepted}) or "
                "refused naming file, line and key")
    return row


def master_data(workdir: Path, seed: int, n: int) -> Row:
    from core.config import ConfigError, load_config
    from core.masterdata import check_references, read_master

    rng = random.Random(seed)
    row = Row("fuzzed master data")
    loaded = load_config(ROOT / "config.toml")
    base = (ROOT / "data" / "master.toml").read_text(encoding="utf-8")
    accepted = 0
    for i in range(n):
        row.trials += 1
        text, key, what = mutate(base, rng)
        p = workdir / f"fuzz-master-{i}.toml"
        p.write_text(text, encoding="utf-8", errors="surrogateescape")

        def check(p: Path = p) -> int:
            try:
                spec, txt = read_master(p)
                check_references(spec, loaded, p, txt)
            except ConfigError as e:
                print(str(e), file=__import__("sys").stderr)
                return 1
            return 0

        rc, _, err, crashed = _in_process(check)
        if _judge(row, f"master {i} ({what})", rc, err, p, key, crashed) and rc == 0:
            accepted += 1
    row.note = (f"{row.trials - row.failures}/{row.trials} accepted as valid ({accepted}) or "
                "refused naming file, line and key")
    return row


def _store(workdir: Path) -> Path:
    """A store with the master data loaded, as the runtime's first start leaves it."""
    from core.clock import WallClock
    from core.config import load_config
    from core.masterdata import ensure_master_data
    from core.store.db import open_store

    db = workdir / "cli.db"
    if not db.exists():
        st = open_store(str(db))
        try:
            ensure_master_data(st, load_config(ROOT / "config.toml", db=str(db)), WallClock())
        finally:
            st.close()
    return db


def _cli_cases(db: Path, rng: random.Random, workdir: Path) -> list[list[str]]:
    garbage = workdir / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 50)
    folder = workdir / "a-folder.db"
    folder.mkdir(exist_ok=True)
    dbs = [str(db), "/no/such/dir/x.db", str(garbage), str(folder), "postgresql://nobody@/x",
           "sqlite:////no/such/dir/y.db", "", "mysql+nope://x"]
    hostile = ["", " ", "-", "--", "\x00", "ü" * 50, "x" * 5000, "'; DROP TABLE audit_entry;--",
               "../../etc/passwd", "-1", "1e999", "nan", "REC-does-not-exist", "%s%s%n"]
    C = ROOT / "config.toml"
    templates = [
        ["status", "--json", "--bogus"], ["status", "--db", "{db}"], ["recs", "--status", "{h}"],
        ["recs", "--db", "{db}", "--json"], ["approve", "{h}", "--user", "{h}", "--pin", "{h}"],
        ["approve", "REC-x", "--user", "maya", "--pin", "0000"], ["approve"],
        ["reject", "{h}", "--user", "sam", "--pin", "2222", "--reason", "{h}"],
        ["reject", "REC-x", "--user", "sam", "--pin", "2222", "--reason", "other"],
        ["holds", "--status", "{h}"], ["wo", "--all", "--db", "{db}"], ["lots", "--trace", "{h}"],
        ["alarms", "--status", "{h}"], ["export", "{h}", "--format", "csv", "--out", "{out}"],
        ["export", "samples", "--format", "{h}", "--out", "{out}"],
        ["export", "lots", "--format", "csv", "--out", "/no/such/dir/out.csv"],
        ["export", "audit", "--format", "csv", "--out", "{out}", "--since", "{h}"],
        ["export", "lots", "--format", "parquet", "--out", "{out}", "--until", "{h}"],
        ["report", "{h}"], ["report", "oee", "--by", "{h}"],
        ["report", "downtime", "--states", "{h}"], ["report", "scrap", "--plot", "{h}"],
        ["report", "oee", "--since", "2026-13-45"], ["audit", "verify", "--anchor", "{h}"],
        ["audit", "verify", "--anchor", "/no/such/file"], ["audit", "tail", "-n", "{h}"],
        ["audit", "bogus"], ["user", "pin", "--pin", "{h}"], ["user", "unlock", "{h}",
                                                              "--admin", "{h}"],
        ["user", "list", "--db", "{db}"], ["config", "check", "/no/such.toml"],
        ["config", "check", "{garbage}"], ["config", "{h}"], ["plan", "--time-limit", "{h}"],
        ["plan", "--time-limit", "-3"], ["run"], ["run", "--headless", "--speed", "{h}"],
        ["run", "--headless", "--speed", "0"], ["run", "--headless", "--duration", "never"],
        ["run", "--headless", "--inject", "{h}"], ["run", "--headless", "--approve", "{h}"],
        ["eval", "--days", "{h}"], ["eval", "--days", "-1"], ["{h}"], ["--config", "{h}", "status"],
        ["--config", "/no/such/config.toml", "status"], ["ml", "cmapss", "--train", "/no/file"],
        ["train", "{h}"], ["models", "{h}"], ["sim", "--speed", "{h}"],
    ]
    out: list[list[str]] = []
    for k in range(100):
        t = templates[k % len(templates)] if k < len(templates) else rng.choice(templates)
        args = [a.replace("{h}", rng.choice(hostile)).replace("{db}", rng.choice(dbs))
                .replace("{out}", str(workdir / f"out-{k}.csv")).replace("{garbage}",
                                                                         str(garbage))
                for a in t]
        if "--config" not in args:
            args += ["--config", str(C)]
        if "--db" not in args:
            args += ["--db", rng.choice(dbs[:4]) if k % 3 else str(db)]
        out.append(args)
    return out


def cli_invocations(workdir: Path, seed: int, n: int = 100, env_cases: int | None = None
                    ) -> Row:
    """``env_cases``: how many of the environment cases to run (all by default)."""
    rng = random.Random(seed)
    row = Row("malformed CLI")
    db = _store(workdir)
    before = {p for p in Path("/no").rglob("*")} if Path("/no").exists() else set()
    cases = _cli_cases(db, rng, workdir)[:n]
    for args, (rc, _, err, crashed) in zip(cases, cli_batch(cases, workdir), strict=True):
        row.trials += 1
        case = " ".join(a[:30] for a in args[:6])
        if crashed:
            row.fail(f"`{case}`: {crashed}")
        elif "Traceback" in err:
            row.fail(f"`{case}`: traceback on stderr")
        elif rc == 0 and args[0] not in ("status", "recs", "holds", "wo", "lots", "alarms",
                                          "user", "audit", "report", "export", "config"):
            row.fail(f"`{case}`: accepted (exit 0)")
    if Path("/no").exists() and {p for p in Path("/no").rglob("*")} != before:
        row.fail("a command created /no/such/dir")
    env_row = environment_errors(workdir, db, env_cases)
    row.trials += env_row.trials
    row.failures += env_row.failures
    row.problems += env_row.problems
    row.note = (f"{row.trials - row.failures}/{row.trials} refused with one line, no "
                f"traceback (incl. {env_row.trials} read-only/locked/full/missing store "
                "cases as separate processes)")
    return row


def environment_errors(workdir: Path, db: Path, limit: int | None = None) -> Row:
    """The store read-only (root's override of file modes dropped), locked, on a full
    disk, missing: each command a user would run there says why in one line."""
    import shutil

    row = Row("environment")
    ro = workdir / "ro"
    ro.mkdir(exist_ok=True)
    shutil.copy(db, ro / "cli.db")
    (ro / "cli.db").chmod(0o444)
    ro.chmod(0o555)
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search",
            "--inh-caps=-dac_override,-dac_read_search"]
    cmds = [["approve", "REC-x", "--user", "maya", "--pin", "3333"],
            ["reject", "REC-x", "--user", "sam", "--pin", "2222", "--reason", "other"],
            ["user", "unlock", "sam", "--admin", "ada", "--pin", "9999"], ["status"],
            ["audit", "verify"]]
    cases: list[tuple[str, list[str], dict[str, str], Path]] = []
    if shutil.which("setpriv"):
        cases += [("read-only", [*drop, *c], {}, ro / "cli.db") for c in cmds]
    cases += [("missing", c, {}, workdir / "nope" / "x.db") for c in cmds]
    cases += [("locked", c, {"LOOPLINE_BUSY_TIMEOUT_MS": "200"}, db) for c in cmds[:3]]
    from bench.chaos.store_faults import _fill, _mount_tmpfs, _umount

    full = workdir / "full-fs"
    mounted = _mount_tmpfs(full, 64)
    if mounted:
        shutil.copy(db, full / "cli.db")
        _fill(full)
        cases += [("full disk", c, {}, full / "cli.db") for c in cmds[:3]]
    if limit is not None:  # one of each kind first
        kinds: dict[str, list] = {}
        for case in cases:
            kinds.setdefault(case[0], []).append(case)
        cases = [c for group in zip(*kinds.values(), strict=False) for c in group][:limit]
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        for what, c, env, target in cases:
            row.trials += 1
            if what == "locked":
                holder.execute("BEGIN EXCLUSIVE")
            try:
                if c[0] == "setpriv":
                    res = _priv(c, target)
                else:
                    res = cli(*c, "--db", str(target), "--config", str(ROOT / "config.toml"),
                              env_extra=env)
            finally:
                if what == "locked":
                    holder.execute("ROLLBACK")
            err = res.stderr.strip()
            lines = [x for x in err.splitlines() if x.strip()]
            if "Traceback" in err or (res.returncode == 0 and c[-1] not in ("status", "verify")):
                row.fail(f"{what} `{' '.join(c[-6:])}`: rc {res.returncode}: {err[-200:]}")
            elif res.returncode != 0 and len(lines) != 1:
                row.fail(f"{what} `{' '.join(c[-6:])}`: {len(lines)} lines: {err[-200:]}")
    finally:
        holder.close()
        ro.chmod(0o755)
        if mounted:
            _umount(full)
    if (workdir / "nope").exists():
        row.fail("a command on a missing store created its folder")
    return row


def _priv(c: list[str], target: Path) -> subprocess.CompletedProcess[str]:
    import sys

    from bench.chaos import child_env

    n = c.index("--inh-caps=-dac_override,-dac_read_search") + 1
    cmd = [*c[:n], sys.executable, "-m", "console.cli", *c[n:], "--db", str(target),
           "--config", str(ROOT / "config.toml")]
    return subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True,
                          timeout=120, check=False)
