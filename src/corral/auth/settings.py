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
    method: Literal["simple_tls", "start_tls", "plain"] = Field(
        "start_tls", description="`start_tls` (as vmpooler), `simple_tls` (LDAPS) or `plain` (corral only: no TLS)")
    tls_options: dict[str, Any] = Field(
        default_factory=dict, description="`ca_file` (a PEM bundle to trust), `verify_mode` (`peer` or `none`), "
        "`ssl_version` (e.g. `TLSv1_2`, the lowest version allowed); never shown")


class LdapServiceAccount(SettingsModel):
    user_dn: str = Field(min_length=1, description="the DN of an account that searches for the user's entry; the "
                         "user is then bound as the DN found")
    password: SecretStr = Field(description="that account's password; never shown")


class LdapSettings(SettingsModel):
    """``:auth: :ldap:``, as vmpooler reads it."""

    corral_keys = frozenset({"timeout"})

    host: str = Field(min_length=1, description="the LDAP server")
    port: int = Field(389, ge=1, le=65535, description="its port")
    base: list[str] = Field(min_length=1, description="a base DN, or a list of them, to find users under")
    user_object: list[str] = Field(min_length=1, description="the attribute naming a user (`uid`, `cn`, "
                                   "`samAccountName`…), or a list to try in turn")
    encryption: LdapEncryption = Field(default_factory=LdapEncryption, description="how the connection is "
                                       "secured")
    service_account_hash: LdapServiceAccount | None = Field(
        None, description="an account that searches for the user's entry; none: each base and user attribute is "
        "tried as a bind DN `<user_object>=<user>,<base>`")
    timeout: float = Field(10.0, gt=0, description="seconds one LDAP operation may take")

    @field_validator("base", "user_object", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value


class AuthSettings(SettingsModel):
    """``:auth:``: who may create tokens."""

    corral_keys = frozenset({"users", "login_workers", "login_queue", "login_failures", "login_address_failures",
                             "login_window", "login_backoff", "login_backoff_max"})

    provider: Literal["ldap", "dummy", "static"] = Field(
        description="who checks passwords: `ldap`, `static` (corral only: `users` below) or `dummy` (any password "
        "that differs from the user name; only with `VMPOOLER_DEBUG` set)")
    ldap: LdapSettings | None = Field(None, description="the LDAP server, for `provider: ldap`")
    users: dict[str, SecretStr] = Field(default_factory=dict, description="`static` provider: user name → password "
                                        "hash, made with `corral auth hash-password` (`pbkdf2_sha256$…`)")
    # corral: the login guard in front of every provider
    login_workers: int = Field(1, ge=1, le=64, description="password checks that run at once; the `static` provider "
                               "hashes in its own executor of this many threads")
    login_queue: int = Field(8, ge=0, description="logins that may wait for a check; one more is answered 503 at "
                             "once, with `Retry-After`")
    login_failures: int = Field(5, ge=0, description="failed logins of one user name before it is backed off; "
                                "`0`: off")
    login_address_failures: int = Field(
        20, ge=0, description="failed logins from one client address before it is backed off; `0`: off"
    )
    login_window: float = Field(900, gt=0, description="seconds without a failure after which a user's or "
                                "address's failures are forgotten")
    login_backoff: float = Field(2, gt=0, description="seconds the first backoff lasts; doubled for each further "
                                 "failure")
    login_backoff_max: float = Field(300, gt=0, description="seconds a backoff grows to at most (at least "
                                     "`login_backoff`)")

    @field_validator("login_backoff_max")
    @classmethod
    def _backoff_max_covers_backoff(cls, value: float, info: Any) -> float:  # info: pydantic ValidationInfo
        first = info.data.get("login_backoff")
        if first is not None and value < first:
            raise ValueError(f"login_backoff_max ({value:g}) must be at least login_backoff ({first:g})")
        return value
