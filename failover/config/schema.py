"""The JSON schema of the config file, generated from the models.

`python3 -m failover.config.schema > configs/failover.schema.json` regenerates it; a test
fails when the committed copy is out of date. Editors (YAML language server) can use it:
`# yaml-language-server: $schema=configs/failover.schema.json`.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def config_schema() -> dict[str, Any]:
    from failover.config.models import Config

    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "failover config"
    return schema


def schema_text() -> str:
    return json.dumps(config_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(schema_text())
