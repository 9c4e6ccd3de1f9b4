"""Print a short key of the exact dependency spec (Python minor version + pyproject deps).

CI reuses a virtualenv cached outside the clone only under this key, so any change to the
dependency lists (or the interpreter) builds a fresh one.
"""
import hashlib
import json
import sys
from pathlib import Path

text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
python = f"{sys.version_info.major}.{sys.version_info.minor}"
try:
    import tomllib  # Python >= 3.11
except ModuleNotFoundError:  # 3.10: key on the whole file, which contains the spec
    spec = {"python": python, "pyproject": text}
else:
    project = tomllib.loads(text)["project"]
    spec = {"python": python, "deps": project["dependencies"],
            "extras": project.get("optional-dependencies", {})}
print(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16])
