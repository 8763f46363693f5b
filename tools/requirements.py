"""Prints the Python requirements of pyproject.toml (runtime and the given extras), one a line.

`make install` feeds them to pip before maturin builds the extension, so that the
dependencies install once and the Rust build stays separate from them.
"""

import sys
import tomllib
from pathlib import Path

project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
requirements = list(project["dependencies"])
for extra in sys.argv[1:]:
    requirements += project["optional-dependencies"][extra]
print("\n".join(requirements))
