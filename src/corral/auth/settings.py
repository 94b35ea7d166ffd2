"""The ``:auth:`` section of the configuration: which provider checks passwords, and the login
guard in front of it.

The configuration model (:class:`corral.config.Config`) reads the section with these models;
the authenticators are built from them (:func:`corral.auth.build_authenticator`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from corral.domain.settings_model import SettingsModel

__all__ = ["AuthSettings", "LdapEncryption", "LdapServiceAccount", "LdapSettings"]


class LdapEncryption(SettingsModel):
    method: Literal["simple_tls", "start_tls", "plain"] = "start_tls"
    tls_options: dict[str, Any] = Field(default_factory=dict)


class LdapServiceAccount(SettingsModel):
    user_dn: str = Field(min_length=1)
    password: SecretStr


class LdapSettings(SettingsModel):
    """``:auth: :ldap:``, as vmpooler reads it."""

    host: str = Field(min_length=1)
    port: int = Field(389, ge=1, le=65535)
    base: list[str] = Field(min_length=1)
    user_object: list[str] = Field(min_length=1)
    encryption: LdapEncryption = Field(default_factory=LdapEncryption)
    service_account_hash: LdapServiceAccount | None = None
    timeout: float = Field(10.0, gt=0, description="corral: seconds one LDAP operation may take")

    @field_validator("base", "user_object", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value


class AuthSettings(SettingsModel):
    """``:auth:``: who may create tokens."""

    provider: Literal["ldap", "dummy", "static"]
    ldap: LdapSettings | None = None
    users: dict[str, SecretStr] = Field(default_factory=dict, description="static: user -> password hash")
    # corral: the login guard in front of every provider
    login_workers: int = Field(1, ge=1, le=64, description="password checks that run at once")
    login_queue: int = Field(8, ge=0, description="logins that may wait for a check; more are refused (503)")
    login_failures: int = Field(5, ge=0, description="failed logins of one user before backoff (429); 0: off")
    login_address_failures: int = Field(
        20, ge=0, description="failed logins from one client address before backoff (429); 0: off"
    )
    login_window: float = Field(900, gt=0, description="seconds without a failure after which failures are forgotten")
    login_backoff: float = Field(2, gt=0, description="seconds of the first backoff; doubled per further failure")
    login_backoff_max: float = Field(300, gt=0, description="seconds the backoff grows to at most")

    @field_validator("login_backoff_max")
    @classmethod
    def _backoff_max_covers_backoff(cls, value: float, info: Any) -> float:  # info: pydantic ValidationInfo
        first = info.data.get("login_backoff")
        if first is not None and value < first:
            raise ValueError(f"login_backoff_max ({value:g}) must be at least login_backoff ({first:g})")
        return value
