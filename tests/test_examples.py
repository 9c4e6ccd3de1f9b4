"""The worked examples run as documented and write what they say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_projection_attack_example_attacks_through_the_projection(tmp_path):
    out = tmp_path / "attack.png"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "attack_projection.py"), "--samples", "4",
                           "--steps", "3", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("4 generated digits, eps = 0.1")
    through = next(line for line in lines if "attack through P" in line)
    assert through.endswith("samples with a gradient at each step: 4 4 4 4 of 4)")
    # gradients flow through the projection: a nonzero gradient reached the input at the end
    norm = float(through.split("gradient norm at the end ")[1].split(";")[0])
    assert norm > 0
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
