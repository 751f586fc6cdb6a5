"""What every config section shares: the model base (unknown keys are errors, values are
frozen) and the pattern of names (sites, endpoints, providers, templates).

Models build their validators on first use (`defer_build`), not when their module is
imported: a command validates only what the config it loads reaches, and a provider's
model (validated through its `type`) is built only when a config names that type."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False, defer_build=True)
