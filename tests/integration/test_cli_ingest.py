"""`nexus ingest` as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def _ingest(tmp_path: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NEXUS_DATA_DIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-m", "nexus", "ingest", "--quiet", *paths],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_ingest_sample_twice(tmp_path: Path) -> None:
    sample = str(REPO / "data" / "sample" / "market")
    first = _ingest(tmp_path, sample)
    assert first.returncode == 0, first.stderr
    assert "ingested 6 files (0 already taken)" in first.stdout
    assert "lean:oanda: received" in first.stdout
    assert (tmp_path / "store" / "quotes" / "OANDA.EURUSD" / "2014-05-06.parquet").exists()
    second = _ingest(tmp_path, sample)
    assert "ingested 0 files (6 already taken)" in second.stdout


def test_ingest_reports_missing_and_unknown_files(tmp_path: Path) -> None:
    missing = _ingest(tmp_path, str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert "no such file or folder" in missing.stderr
    stray = tmp_path / "stray.zip"
    stray.write_bytes(b"PK")
    unknown = _ingest(tmp_path, str(stray))
    assert unknown.returncode == 0
    assert "skipped:" in unknown.stderr
    assert "lean_<vendor>_<symbol>" in unknown.stderr
