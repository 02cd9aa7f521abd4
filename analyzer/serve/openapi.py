"""Print the API's OpenAPI document (committed as docs/openapi.json)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from .app import Settings, create_app


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        doc = create_app(Settings(data_dir=Path(tmp))).openapi()
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
