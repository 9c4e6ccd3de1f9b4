"""Print a short key of the exact dependency spec (Python minor version + pyproject deps).

CI reuses a virtualenv cached outside the clone only under this key, so any change to the
dependency lists (or the interpreter) builds a fresh one.
"""
import hashlib
import json
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
spec = {
    "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    "deps": project["dependencies"],
    "extras": project.get("optional-dependencies", {}),
}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
