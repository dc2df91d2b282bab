"""The run-time configuration entities: called AEs, sources and destinations, as the database keeps them.

The TOML file seeds them (`store/config_store.py`); afterwards the database is the truth and every process
applies it to its `Config` in place (`live_config.py`), so that everything that reads `config.destinations`,
`config.dicom.called_aes`, `config.dicom.allowed_sources` or a pipeline's `destinations` sees the change
without a restart. This module is pure: parsing and validating an entity, and moving entities between a
`Config` and their database form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args

from pydantic import BaseModel, Field, ValidationError

from dicom_node.config import AllowedSource, CalledAe, Config, Destination

Kind = Literal["ae", "source", "destination"]
KINDS: tuple[Kind, ...] = get_args(Kind)
SECRET_FIELDS = frozenset({"wado_rs_token", "wado_rs_password"})
REDACTED = "[redacted]"


class RoutedDestination(Destination):
    """A destination with the pipelines whose results go to it (`[pipelines.<name>] destinations` in the file)."""

    pipelines: list[str] = Field(default_factory=list, description="Pipelines whose results are sent to this destination.")

    def destination(self) -> Destination:
        return Destination.model_validate(self.model_dump(exclude={"pipelines"}))


Entity = Union[CalledAe, AllowedSource, RoutedDestination]
MODELS: dict[Kind, type[BaseModel]] = {"ae": CalledAe, "source": AllowedSource, "destination": RoutedDestination}
NOUNS: dict[Kind, str] = {"ae": "called AE", "source": "source", "destination": "destination"}


class InvalidEntity(ValueError):
    """An entity that breaks a rule; `problems` names each field and its rule (REST: 422; CLI: exit 2)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{problem['field']}: {problem['rule']}" for problem in problems))


def key(kind: Kind, entity: BaseModel) -> str:
    """The name an entity is addressed by: a called AE by its title, the others by their name."""
    return str(entity.ae_title if kind == "ae" else entity.name)  # type: ignore[attr-defined]


def parse(kind: Kind, body: dict[str, Any], config: Config) -> Entity:
    """Validate `body` as an entity of `kind` against the pipelines and AEs `config` has."""
    try:
        entity: Entity = MODELS[kind].model_validate(body)  # type: ignore[assignment]
    except ValidationError as exc:
        raise InvalidEntity(
            [{"field": ".".join(str(part) for part in item["loc"]) or kind, "rule": item["msg"].removeprefix("Value error, ")} for item in exc.errors()]
        ) from None
    problems = []
    if isinstance(entity, (CalledAe, RoutedDestination)):
        unknown = sorted(set(entity.pipelines) - set(config.pipelines))
        if unknown:
            problems.append({"field": "pipelines", "rule": f"configured pipelines only ({', '.join(config.pipelines)}); unknown: {', '.join(unknown)}"})
    if problems:
        raise InvalidEntity(problems)
    return entity


def public(kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
    """An entity as shown over REST, in the CLI and in the audit log: secrets replaced by `[redacted]`."""
    return {name: (REDACTED if name in SECRET_FIELDS and value else value) for name, value in spec.items()}


def merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """An update: `current` with the fields `changes` gives; a secret given back as `[redacted]` (an entity read,
    edited and sent back whole) keeps its value."""
    return current | {name: value for name, value in changes.items() if not (name in SECRET_FIELDS and value == REDACTED)}


@dataclass
class Entities:
    """Every entity of the running configuration, each as its model's JSON form, by kind and name."""

    specs: dict[Kind, dict[str, dict[str, Any]]] = field(default_factory=lambda: {kind: {} for kind in KINDS})

    @classmethod
    def from_config(cls, config: Config) -> Entities:
        """What a configuration (file, environment, flags) says: the seed of the database."""
        entities = cls()
        for called in config.dicom.called_aes:
            entities.specs["ae"][called.ae_title] = called.model_dump(mode="json")
        for source in config.dicom.allowed_sources:
            entities.specs["source"][source.name] = source.model_dump(mode="json")
        for dest in config.destinations:
            routes = [name for name, pipeline in config.pipelines.items() if dest.name in pipeline.destinations]
            entities.specs["destination"][dest.name] = RoutedDestination.model_validate(dest.model_dump() | {"pipelines": routes}).model_dump(mode="json")
        return entities

    def apply_to(self, config: Config) -> None:
        """Make `config` say what these entities say, each list replaced whole: a reader holding the old list keeps a
        consistent one, and the next read sees the new one."""
        called = [CalledAe.model_validate(spec) for spec in self.specs["ae"].values()]
        sources = [AllowedSource.model_validate(spec) for spec in self.specs["source"].values()]
        routed = [RoutedDestination.model_validate(spec) for spec in self.specs["destination"].values()]
        if called:  # the store refuses to remove the last one; an empty table would leave the node deaf
            config.dicom.called_aes = called
        config.dicom.allowed_sources = sources
        config.destinations = [dest.destination() for dest in routed]
        for name, pipeline in config.pipelines.items():
            pipeline.destinations = [dest.name for dest in routed if name in dest.pipelines]
