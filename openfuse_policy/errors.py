"""Errors raised by the governance package.

They hang off the OpenFuse hierarchy in :mod:`openfuse_connectors.errors`, grouped by what the
caller should do: every error here is fatal (fix the input first); none is retriable.

* :class:`PolicyValidationError` - policy text that does not parse or does not type-check
  against the generated schema. Carries Cedar's diagnostics, each with the policy id, the
  file and line it starts on, and Cedar's message naming the attribute or type at fault.
* :class:`RequestError` - an authorization request or entity that does not fit the schema
  (unknown action, attribute of the wrong type); a bug in the caller, not a denial.
* :class:`FeatureNotLicensedError` - a feature was used that the license does not grant.
* :class:`LicenseError` - a license could not be issued, or a key file is unusable.
  (A bad *token* is not an error: verification falls back to the community edition.)
* :class:`PolicyTestError` - a policy test file is malformed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openfuse_connectors.errors import ConfigError, FatalError

__all__ = [
    "Diagnostic",
    "FeatureNotLicensedError",
    "LicenseError",
    "PolicyError",
    "PolicyTestError",
    "PolicyValidationError",
    "RequestError",
]


class PolicyError(FatalError):
    """Root of the governance package's errors."""


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem Cedar (or OpenFuse's own checks) found in a policy.

    Attributes:
        message: Cedar's message, with Cedar's positional policy ids replaced by ours.
        policy_id: the OpenFuse policy id (``@id`` or positional), or ``None`` if the text did not
            parse far enough to tell.
        source: the file (or ``<string>``) the policy came from.
        line: 1-based line of the offending construct when it could be located, else the line the
            policy starts on.
        kind: ``parse`` | ``validation`` | ``annotation`` | ``duplicate-id`` | ``unsupported``.
    """

    message: str
    policy_id: str | None = None
    source: str | None = None
    line: int | None = None
    kind: str = "validation"

    def __str__(self) -> str:
        where = self.source or "<policies>"
        if self.line is not None:
            where += f":{self.line}"
        pid = f" policy {self.policy_id!r}" if self.policy_id else ""
        return f"{where}:{pid} [{self.kind}] {self.message}"


class PolicyValidationError(ConfigError, PolicyError):
    """Policies were refused: they do not parse, or do not validate against the schema.

    Attributes:
        diagnostics: every problem found, in source order.
        source: where the policies came from.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic], *, source: str | None = None):
        self.diagnostics = tuple(diagnostics)
        lines = "\n  ".join(str(d) for d in self.diagnostics)
        n = len(self.diagnostics)
        super().__init__(
            f"{n} problem{'s' if n != 1 else ''} in policies; fix them and load again:\n  {lines}",
            source=source,
        )


class RequestError(PolicyError):
    """An authorization request or entity does not fit the schema.

    Attributes:
        field: the request field or attribute at fault.
        value: the offending value.
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None):
        self.field = field
        self.value = value
        detail = f" ({field=} value={value!r})" if field is not None else ""
        super().__init__(f"{message}{detail}")


class FeatureNotLicensedError(PolicyError):
    """A license-gated feature was used without a license that grants it."""

    def __init__(self, feature: str, *, edition: str, what: str):
        self.feature = feature
        self.edition = edition
        super().__init__(
            f"{what} needs the license feature {feature!r}, which the {edition} edition does not grant. "
            "Run `openfuse license show` to see what your license grants."
        )


class LicenseError(PolicyError):
    """A license could not be issued or a key is unusable (bad PEM, wrong key type)."""


class PolicyTestError(PolicyError):
    """A policy test file is malformed; names the file and the case."""

    def __init__(self, message: str, *, file: str, case: str | None = None):
        self.file = file
        self.case = case
        where = f"{file}" + (f", case {case!r}" if case else "")
        super().__init__(f"{where}: {message}")
