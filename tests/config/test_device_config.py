"""Broken device configs: `config check` names each in one line; `run` refuses them too.

Each case is one edit of the shipped config.toml (or its master data), the way an
engineer connecting a real plant gets it wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from console.cli import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.toml"
MASTER = ROOT / "data" / "master.toml"

STATE = 'address = "ns=2;s={line}.{equipment}.State"'
REASON = 'address = "ns=2;s={line}.{equipment}.StateReason", kind = "context"'
VIB_MB = 'address = "hr:{base+0}", data_type = "float32"'
STATE_MB = 'address = "hr:{base+5}", kind = "state", data_type = "uint16"'
LOT_MB = 'address = "hr:{base+15}", kind = "context", data_type = "uint32"'
CMD_MB = 'address = "hr:{base+40}", kind = "command", data_type = "uint16", writable = true'
OPC_DRV = 'endpoint = "opc.tcp://127.0.0.1:4840/loopline/"'
MB_DRV = 'poll_interval_ms = 500'
EXTR = 'id = "C-EXTR1"'
LATHE = 'id = "A-LATHE1"'

# (case id, config edit (old, new) or None, master edit (old, new) or None, expected words)
CASES: list[tuple[str, tuple[str, str] | None, tuple[str, str] | None, str]] = [
    ("opcua-not-a-node-id", (STATE, 'address = "{line}.{equipment}.State"'), None,
     "is not an OPC UA node id"),
    ("opcua-ns-not-a-number", (STATE, 'address = "ns=two;s={line}.{equipment}.State"'), None,
     "namespace index ns=two must be a number"),
    ("opcua-nsu-without-uri", (STATE, 'address = "nsu=;s={line}.{equipment}.State"'), None,
     "nsu= needs the namespace URI"),
    ("opcua-numeric-id-not-a-number", (STATE, 'address = "ns=2;i=State"'), None,
     "not a valid number identifier"),
    ("opcua-empty-identifier", (STATE, 'address = "ns=2;s="'), None,
     "identifier after s= is empty"),
    ("opcua-deadband-on-text", (REASON, REASON + ", deadband = 0.5"), None,
     "deadband needs a numeric data_type"),
    ("modbus-garbage-address", (VIB_MB, 'address = "holding:{base+0}", data_type = "float32"'),
     None, "is not one of hr:N"),
    ("modicon-zero", (VIB_MB, 'address = "40000", data_type = "float32"'), None,
     "Modicon numbers are 1-based"),
    ("modicon-unknown-table", (VIB_MB, 'address = "20001", data_type = "float32"'), None,
     "Modicon numbers start with 0, 1, 3 or 4"),
    ("register-out-of-range", (VIB_MB, 'address = "hr:70000", data_type = "float32"'), None,
     "outside 0..65535"),
    ("bit-out-of-range", ('address = "hr:{base+6}.0"', 'address = "hr:{base+6}.16"'), None,
     "bit 16 is outside 0..15"),
    ("coil-with-bit", ('address = "hr:{base+6}.0"', 'address = "co:{base+6}.1"'), None,
     "take no bit index"),
    ("coil-holding-a-float", (VIB_MB, 'address = "co:{base+0}", data_type = "float32"'), None,
     "hold bools, not float32"),
    ("bool-register-without-bit", (STATE_MB, 'address = "hr:{base+5}", kind = "state", '
                                   'data_type = "bool"'), None, "needs a bit"),
    ("string-over-modbus", (LOT_MB, 'address = "hr:{base+15}", kind = "context", '
                            'data_type = "string"'), None, "string is not supported over Modbus"),
    ("value-runs-past-the-end", (VIB_MB, 'address = "hr:65535", data_type = "float32"'), None,
     "runs past 65535"),
    ("writable-input-register", (CMD_MB, CMD_MB.replace("hr:", "ir:")), None,
     "input registers are read-only"),
    ("unknown-poll-group", (STATE_MB, STATE_MB + ', poll_group = "fast"'), None,
     "poll_group 'fast' is not one of"),
    ("security-without-certificate", (OPC_DRV, OPC_DRV + '\nsecurity_policy = "Basic256Sha256"'
                                      '\nsecurity_mode = "Sign"'), None,
     "needs certificate and private_key"),
    ("certificate-missing", (OPC_DRV, OPC_DRV + '\nsecurity_policy = "Basic256Sha256"'
                             '\nsecurity_mode = "Sign"\ncertificate = "pki/none.pem"'
                             '\nprivate_key = "pki/none-key.pem"'), None, "does not exist"),
    ("password-env-unset", (OPC_DRV, OPC_DRV + '\nsecurity_policy = "Basic256Sha256"'
                            '\nsecurity_mode = "SignAndEncrypt"\ncertificate = "plant.toml"'
                            '\nprivate_key = "plant.toml"\nusername = "op"'
                            '\npassword_env = "LOOPLINE_NO_SUCH_PW"'), None,
     "LOOPLINE_NO_SUCH_PW (password_env) is not set"),
    ("unit-id-on-opcua", (LATHE, LATHE + "\n  unit_id = 3"), None,
     "unit_id is a Modbus device id"),
    ("layout-contradiction", (VIB_MB, VIB_MB + ', word_order = "CDAB", byte_order = "little"'),
     None, "contradicts the layout 'CDAB'"),
    ("product-on-unknown-line", None, ('line = "A"\nlot_size', 'line = "Z"\nlot_size'),
     "unknown line 'Z'"),
]


def _case_files(tmp_path: Path, cfg_edit: tuple[str, str] | None,
                master_edit: tuple[str, str] | None) -> Path:
    master = MASTER.read_text(encoding="utf-8")
    if master_edit is not None:
        assert master_edit[0] in master, master_edit[0]
        master = master.replace(master_edit[0], master_edit[1], 1)
    (tmp_path / "master.toml").write_text(master, encoding="utf-8")
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace('master_data = "data/master.toml"', 'master_data = "master.toml"', 1)
    if cfg_edit is not None:
        assert cfg_edit[0] in text, cfg_edit[0]
        text = text.replace(cfg_edit[0], cfg_edit[1], 1)
    p = tmp_path / "plant.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_twenty_kinds_at_least() -> None:
    assert len(CASES) >= 20


def test_the_unedited_config_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = _case_files(tmp_path, None, None)
    assert main(["config", "check", str(p)]) == 0
    assert "ok" in capsys.readouterr().out


@pytest.mark.parametrize("cfg_edit, master_edit, words",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_check_and_run_refuse_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    cfg_edit: tuple[str, str] | None, master_edit: tuple[str, str] | None, words: str,
) -> None:
    monkeypatch.delenv("LOOPLINE_NO_SUCH_PW", raising=False)
    monkeypatch.delenv("LOOPLINE_CONFIG", raising=False)
    monkeypatch.delenv("LOOPLINE_DB", raising=False)
    p = _case_files(tmp_path, cfg_edit, master_edit)
    assert main(["config", "check", str(p)]) == 1
    err = capsys.readouterr().err.strip()
    lines = err.splitlines()
    # the mistake is the first line, whole; any further lines are its own consequences
    # (both files of a pair missing, recipes on the product's unknown line), each a
    # complete problem naming its file
    assert words in lines[0], err
    assert all(ln.startswith(str(tmp_path)) for ln in lines if not ln.startswith("..."))
    assert "Traceback" not in err
    # `run` refuses the same config before it starts anything: the same line, no traceback
    rc = main(["run", "--headless", "--no-sim", "--no-ml", "--quiet", "--duration", "1",
               "--config", str(p), "--db", str(tmp_path / "x.db")])
    out = capsys.readouterr()
    assert rc == 2, out
    assert "Traceback" not in out.err and words in out.err
    assert out.err.strip().splitlines()[1:] == lines
