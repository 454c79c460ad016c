"""Secrets: each read once, from the environment variable its config section names, held as SecretStr.

A config section lists its secrets in `SECRETS` (secret name -> the field that names its
environment variable, e.g. {"api_key": "api_key_env"}). They are read when the section is
built, kept out of the fields (so never in `repr`, `model_dump`, `ragbot config` or a
validation error) and handed out only as `SecretStr` or, to a client library, by
`secret_value()`. Nothing else in the code reads a secret from the environment.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import BaseModel, PrivateAttr, SecretStr


class SecretsFromEnv(BaseModel):
    """A config section holding secrets resolved from the variables its fields name."""

    SECRETS: ClassVar[dict[str, str]] = {}
    _secrets: dict[str, SecretStr] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any) -> None:
        """Read each secret once, now."""
        for name, env_field in self.SECRETS.items():
            value = os.environ.get(getattr(self, env_field))
            if value:
                self._secrets[name] = SecretStr(value)

    def secret(self, name: str) -> SecretStr | None:
        """The secret (masked in repr and str), or None when its variable is not set."""
        return self._secrets.get(name)

    def secret_value(self, name: str) -> str | None:
        """The secret's text, for handing to a client library only; None when not set."""
        secret = self._secrets.get(name)
        return secret.get_secret_value() if secret is not None else None

    def secret_env(self, name: str) -> str:
        """The environment variable that holds the secret."""
        return getattr(self, self.SECRETS[name])
