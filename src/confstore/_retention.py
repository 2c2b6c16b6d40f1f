"""Retention: which old versions a store may drop, and the report of a prune.

A ``RetentionRule`` keeps a version when *any* of its limits keeps it: it is one of the key's
``keep_last`` newest versions, or it was written less than ``older_than`` ago. The latest version of
a key is always kept. A key whose latest version is a tombstone older than ``deleted_older_than``
is removed entirely; its version numbers are still not reused (the store remembers the last one).

A ``RetentionPolicy`` is a store-wide rule with optional overrides for a tenant, a scope, or a
tenant's scope; the most specific one applies, and it replaces the store-wide rule as a whole.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ._errors import InvalidConfigError
from ._models import ConfigKey, ConfigScope
from ._validation import validate_identifier, validate_scope, validate_version

_DURATION = re.compile(r"(\d+)\s*(s|m|h|d|w)?", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A year of seconds times ten thousand: far beyond any retention, still a valid timedelta.
_MAX_DURATION = timedelta(days=3_650_000)


def parse_duration(value: object, *, name: str = "older_than") -> timedelta:
    """A non-negative age: a timedelta, seconds (int or float), or text like ``90d``, ``12h``, ``30m``.

    Units: s, m, h, d, w (no unit: seconds). Raises InvalidConfigError otherwise.
    """
    seconds: float
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value  # an int stays one: float() of a huge int raises OverflowError
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())) is not None:
        digits = match.group(1).lstrip("0")
        # More digits than any allowed age has; int() of thousands of them raises ValueError.
        seconds = math.inf if len(digits) > 15 else int(digits or "0")
        seconds *= _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise InvalidConfigError(
            f"{name} must be an age like 90d, 12h, 30m or a number of seconds, got {value!r:.60}",
            field=name,
        )
    if not 0 <= seconds <= _MAX_DURATION.total_seconds():
        raise InvalidConfigError(
            f"{name} must be between 0 and {_MAX_DURATION.days} days, got {value!r:.60}",
            field=name,
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """What to keep of each key's history; see the module docstring. All limits optional."""

    keep_last: int | None = None
    older_than: timedelta | None = None
    deleted_older_than: timedelta | None = None

    def __post_init__(self) -> None:
        if self.keep_last is not None:
            object.__setattr__(
                self, "keep_last", validate_version(self.keep_last, name="keep_last")
            )
        for name in ("older_than", "deleted_older_than"):
            age = getattr(self, name)
            if age is not None:
                object.__setattr__(self, name, parse_duration(age, name=name))

    @classmethod
    def parse(
        cls,
        keep_last: object = None,
        older_than: object = None,
        deleted_older_than: object = None,
    ) -> RetentionRule:
        """A rule from loose input: ages as timedelta, seconds or text (``90d``); InvalidConfigError
        for anything else."""
        return cls(
            None if keep_last is None else validate_version(keep_last, name="keep_last"),
            None if older_than is None else parse_duration(older_than, name="older_than"),
            None
            if deleted_older_than is None
            else parse_duration(deleted_older_than, name="deleted_older_than"),
        )

    @property
    def prunes_versions(self) -> bool:
        return self.keep_last is not None or self.older_than is not None

    @property
    def is_empty(self) -> bool:
        return not self.prunes_versions and self.deleted_older_than is None

    def cutoffs(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """(versions written at or before this may go, tombstones written at or before this go)."""
        older = None if self.older_than is None else now - self.older_than
        deleted = None if self.deleted_older_than is None else now - self.deleted_older_than
        return older, deleted

    def to_dict(self) -> dict[str, Any]:
        return {
            "keep_last": self.keep_last,
            "older_than": _seconds(self.older_than),
            "deleted_older_than": _seconds(self.deleted_older_than),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetentionRule:
        unknown = set(data) - {"keep_last", "older_than", "deleted_older_than"}
        if unknown:
            raise InvalidConfigError(f"unknown retention setting(s): {', '.join(sorted(unknown))}")
        return cls.parse(
            data.get("keep_last"), data.get("older_than"), data.get("deleted_older_than")
        )


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """A store-wide RetentionRule with overrides; ``rule_for(key)`` picks the most specific.

    ``tenants`` maps a tenant_id, ``scopes`` a scope, and ``tenant_scopes`` a (tenant_id, scope)
    pair to the rule used instead of ``default`` for those keys.
    """

    default: RetentionRule = field(default_factory=RetentionRule)
    tenants: Mapping[str, RetentionRule] = field(default_factory=dict)
    scopes: Mapping[ConfigScope, RetentionRule] = field(default_factory=dict)
    tenant_scopes: Mapping[tuple[str, ConfigScope], RetentionRule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for tenant_id in self.tenants:
            validate_identifier("tenant_id", tenant_id)
        object.__setattr__(
            self, "scopes", {validate_scope(scope): rule for scope, rule in self.scopes.items()}
        )
        object.__setattr__(
            self,
            "tenant_scopes",
            {
                (validate_identifier("tenant_id", tenant_id), validate_scope(scope)): rule
                for (tenant_id, scope), rule in self.tenant_scopes.items()
            },
        )

    def rule_for(self, key: ConfigKey) -> RetentionRule:
        rule = self.tenant_scopes.get((key.tenant_id, key.scope))
        if rule is None:
            rule = self.tenants.get(key.tenant_id)
        if rule is None:
            rule = self.scopes.get(key.scope)
        return self.default if rule is None else rule

    def rules(self) -> Iterable[RetentionRule]:
        yield self.default
        yield from self.tenants.values()
        yield from self.scopes.values()
        yield from self.tenant_scopes.values()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``from_dict`` reads (ages in seconds)."""
        return {
            **self.default.to_dict(),
            "tenants": {name: rule.to_dict() for name, rule in self.tenants.items()},
            "scopes": {scope.value: rule.to_dict() for scope, rule in self.scopes.items()},
            "tenant_scopes": {
                f"{tenant_id}/{scope.value}": rule.to_dict()
                for (tenant_id, scope), rule in self.tenant_scopes.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RetentionPolicy:
        """The JSON form: ``{"keep_last": 10, "older_than": "90d", "deleted_older_than": "30d",
        "tenants": {"acme": {...}}, "scopes": {"agent": {...}},
        "tenant_scopes": {"acme/agent": {...}}}``; InvalidConfigError when malformed."""
        if not isinstance(data, Mapping):
            raise InvalidConfigError("a retention policy must be a JSON object")
        overrides = {"tenants", "scopes", "tenant_scopes"}
        default = RetentionRule.from_dict({k: v for k, v in data.items() if k not in overrides})
        tenants = {name: RetentionRule.from_dict(rule) for name, rule in _rules(data, "tenants")}
        scopes = {
            validate_scope(name): RetentionRule.from_dict(rule)
            for name, rule in _rules(data, "scopes")
        }
        tenant_scopes = {}
        for name, rule in _rules(data, "tenant_scopes"):
            tenant_id, slash, scope = name.rpartition("/")
            if not slash:
                raise InvalidConfigError(
                    f"tenant_scopes keys are TENANT/SCOPE, got {name!r}", field="tenant_scopes"
                )
            tenant_scopes[(tenant_id, validate_scope(scope))] = RetentionRule.from_dict(rule)
        return cls(default, tenants, scopes, tenant_scopes)


def _rules(data: Mapping[str, Any], name: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    section = data.get(name, {})
    if not isinstance(section, Mapping) or not all(
        isinstance(rule, Mapping) for rule in section.values()
    ):
        raise InvalidConfigError(f"{name} must map names to retention rules", field=name)
    return section.items()


def _seconds(age: timedelta | None) -> float | None:
    return None if age is None else age.total_seconds()


@dataclass(frozen=True, slots=True)
class VersionInfo:
    """What retention needs to know of one stored version."""

    version: int
    updated_at: datetime
    deleted: bool


@dataclass(frozen=True, slots=True)
class KeyPrune:
    """What a prune removed (or would remove) of one key.

    ``versions`` is how many versions, ``through_version`` the newest of them; ``purged`` is True
    when the whole key went (a tombstone older than ``deleted_older_than``).
    """

    key: ConfigKey
    versions: int
    through_version: int
    purged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.key.to_dict(),
            "versions": self.versions,
            "through_version": self.through_version,
            "purged": self.purged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyPrune:
        """Parse the JSON form; InvalidConfigError when it is malformed."""
        try:
            key = ConfigKey(
                validate_identifier("tenant_id", data["tenant_id"]),
                validate_scope(data["scope"]),
                validate_identifier("service", data["service"]),
                validate_identifier("config_key", data["config_key"]),
            )
            versions, through = data["versions"], data["through_version"]
            if not all(type(number) is int and number >= 0 for number in (versions, through)):
                raise ValueError("versions and through_version must be integers >= 0")
            return cls(key, versions, through, data.get("purged") is True)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidConfigError(f"malformed prune report: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class PruneResult:
    """The report of ``ConfigStore.prune``: each key touched, and the totals."""

    keys: tuple[KeyPrune, ...]
    dry_run: bool
    changes_removed: int = 0

    @property
    def versions_removed(self) -> int:
        return sum(key.versions for key in self.keys)

    @property
    def keys_purged(self) -> int:
        return sum(1 for key in self.keys if key.purged)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruneResult:
        """Parse the JSON form (what ``to_dict`` gives); InvalidConfigError when malformed."""
        keys, removed = data.get("keys"), data.get("changes_removed", 0)
        if not isinstance(keys, list) or type(removed) is not int:
            raise InvalidConfigError("malformed prune report: no keys list")
        return cls(
            tuple(KeyPrune.from_dict(key) for key in keys), data.get("dry_run") is True, removed
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "versions_removed": self.versions_removed,
            "keys_purged": self.keys_purged,
            "changes_removed": self.changes_removed,
            "keys": [key.to_dict() for key in self.keys],
        }


def plan_key_prune(
    key: ConfigKey,
    stored: Sequence[VersionInfo],
    rule: RetentionRule,
    now: datetime,
    *,
    retire: bool = True,
) -> tuple[KeyPrune | None, list[int]]:
    """What ``rule`` removes of one key whose stored versions are ``stored`` (ascending): the
    report (None when nothing goes) and the version numbers.

    The reference for every backend: a version goes when no limit keeps it and it is not the
    latest; the whole key goes when its latest version is a tombstone old enough (with
    ``retire=False``, for a store that cannot remember a removed key's last version, every
    version but that tombstone goes instead).
    """
    if not stored:
        return None, []
    older_cutoff, deleted_cutoff = rule.cutoffs(now)
    latest = stored[-1]
    old_tombstone = (
        latest.deleted and deleted_cutoff is not None and latest.updated_at <= deleted_cutoff
    )
    if old_tombstone and retire:
        return KeyPrune(key, len(stored), latest.version, purged=True), [
            info.version for info in stored
        ]
    if old_tombstone:
        rule = RetentionRule(keep_last=1)
    candidates = stored[:-1] if rule.prunes_versions else []
    if rule.keep_last is not None:
        candidates = candidates[: max(0, len(stored) - rule.keep_last)]
    removed = [
        info.version
        for info in candidates
        if older_cutoff is None or info.updated_at <= older_cutoff
    ]
    if not removed:
        return None, []
    return KeyPrune(key, len(removed), removed[-1]), removed
