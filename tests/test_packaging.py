"""What `pip install .` gives: the library without the application's stack, the shipped
generators under the package's name and never as a bare top-level `models`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP_ONLY = ("lightning", "hydra", "matplotlib", "torchmetrics", "torchvision", "mlxtend")


def test_the_library_imports_and_inverts_without_the_applications_stack():
    blocked = "; ".join(f"sys.modules[{m!r}] = None" for m in APP_ONLY)  # any import of them now fails
    code = (f"import sys; {blocked}; import torch, ganinvert as gi; from ganinvert import nets; "
            "G = nets.random_mlp((5, 20, 60)); g = torch.Generator().manual_seed(0); "
            "r = gi.invert(G, G(torch.randn(3, 5, dtype=torch.float64, generator=g)).detach()); "
            "print(r.counts()['EXACT'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "3"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return zipfile.ZipFile(next(out.glob("ganinvert-*.whl")))


def test_the_wheel_ships_the_generators_as_ganinvert_models_and_no_top_level_models(wheel):
    names = wheel.namelist()
    assert not [n for n in names if n.startswith("models/")]
    assert "ganinvert/models/registry.py" in names and "ganinvert/models/mnist_mlp.pt" in names
    assert "ganinvert/models/manifest.json" in names


def test_the_wheel_ships_every_module_of_the_package(wheel):
    names = set(wheel.namelist())
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "ganinvert").rglob("*.py"))
               if str(p.relative_to(ROOT)) not in names]
    assert not missing, f"add their packages to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_the_wheels_plain_requirements_are_the_librarys_and_the_rest_is_the_app_extra(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    plain = sorted(r.split(">")[0].split("=")[0].split(";")[0].strip() for r in requires if "extra ==" not in r)
    assert plain == ["cvxpy", "cvxpylayers", "numpy", "scipy", "torch", "tqdm"]
    app = {r.split(">")[0].strip() for r in requires if "extra == \"app\"" in r}
    assert app == {"torchvision", "lightning", "hydra-core", "torchmetrics", "matplotlib", "mlxtend"}
