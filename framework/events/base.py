"""The base classes every webhook event model builds on.

Models are deliberately forgiving: GitHub adds fields, sends new actions, and sends the same
field in different shapes in different events (``installation.created_at`` is an epoch int in
some payloads and an ISO string in others). So every model keeps unknown fields
(``extra="allow"``), every timestamp accepts both shapes, and the untouched payload stays
reachable as ``event.raw``.

>>> from framework.events import parse_event
>>> event = parse_event(
...     "installation",
...     {"action": "created", "installation": {"id": 1, "created_at": 1557933591}, "new": 1},
... )
>>> type(event).__name__, event.installation.created_at.isoformat(), event.new
('InstallationCreated', '2019-05-15T15:19:51+00:00', 1)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

import pydantic_core
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PrivateAttr,
    PydanticUserError,
    SerializerFunctionWrapHandler,
    ValidationError,
    create_model,
    model_serializer,
)

from framework.errors import InvalidPayload


def _timestamp(value: Any) -> Any:
    # pydantic reads ints as epoch seconds (or ms past 2e10) and ISO strings natively; GitHub
    # also sends numeric strings in a few places, which pydantic would take as ISO and reject.
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]
"""A point in time sent as an ISO-8601 string or as epoch seconds: both are accepted."""


class Model(BaseModel):
    """Base of every object in a payload: unknown fields are kept, never rejected."""

    # defer_build: a model's validator is built when it first parses a payload, so a bot pays
    # for the events it receives (~4 MiB and ~60 ms at start-up for all of them, otherwise).
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class Installation(Model):
    """The installation a delivery was sent for.

    Outside ``installation*`` events GitHub sends only ``{id, node_id}``, so everything but
    ``id`` is optional.
    """

    id: int
    node_id: str | None = None


class User(Model):
    """A user, organization or bot account (``sender``, ``owner``, ``user`` ...)."""

    login: str
    id: int
    node_id: str | None = None
    type: str | None = None
    html_url: str | None = None
    avatar_url: str | None = None
    site_admin: bool | None = None


class Repository(Model):
    """The repository an event happened in."""

    id: int
    name: str
    full_name: str
    owner: User
    node_id: str | None = None
    private: bool | None = None
    html_url: str | None = None
    description: str | None = None
    fork: bool | None = None
    default_branch: str | None = None
    archived: bool | None = None


class Organization(Model):
    """The organization an event happened in, when there is one."""

    login: str
    id: int
    node_id: str | None = None


def does_not_fit(label: str, cls: type[BaseModel], exc: ValidationError) -> InvalidPayload:
    """The error for a payload that does not fit model ``cls``: the event (``label``, as
    ``issues.opened``) and the first few offending fields."""
    if any(err["type"] == "json_invalid" for err in exc.errors()):
        return InvalidPayload("payload is not valid JSON")
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(payload)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:5]
    )
    return InvalidPayload(f"{label} payload does not fit {cls.__name__}: {problems}")


# One small model per (event model, field): validating the payload against it builds that
# field alone, ignoring the rest of the payload. None: the field is validated with the rest.
_FIELD_MODELS: dict[tuple[type[BaseModel], str], type[BaseModel] | None] = {}
# Fields read from more than one thread at once (plain handlers run in threads and share the
# delivery's event) take their place in the event one at a time; validating them does not wait.
_PLACING = threading.Lock()
_OWN_SERIALIZER = "_serialize_built"


def _by_field(cls: type[BaseModel]) -> bool:
    """Whether ``cls``'s fields can be validated one at a time. Not for a model (a bot's) with
    validators, a ``model_post_init`` or a serializer of its own, which only a validation of
    the whole model runs as written, nor for a frozen one, whose hash reads every field.

    >>> from framework.events import IssuesOpened
    >>> _by_field(IssuesOpened)
    True
    """
    found = cls.__dict__.get("__by_field__")
    if found is None:
        decorators = cls.__pydantic_decorators__
        post_init = getattr(cls.model_post_init, "__name__", "")
        found = not (
            decorators.validators
            or decorators.field_validators
            or decorators.root_validators
            or decorators.model_validators
            or set(decorators.model_serializers) - {_OWN_SERIALIZER}
            or (
                cls.model_post_init is not BaseModel.model_post_init
                and post_init != "init_private_attributes"
            )
            or cls.model_config.get("frozen")
        )
        type.__setattr__(cls, "__by_field__", found)
    return bool(found)


def _field_model(cls: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model of field ``name`` alone, with ``cls``'s settings; None where it cannot be
    made apart from ``cls`` (a name not yet defined when ``cls`` was)."""
    if (cls, name) in _FIELD_MODELS:
        return _FIELD_MODELS[(cls, name)]
    try:
        model: type[BaseModel] | None = _make_field_model(cls, name)
    except (PydanticUserError, NameError):  # NameError: pydantic's undefined annotation
        model = None
    _FIELD_MODELS[(cls, name)] = model
    return model


def _make_field_model(cls: type[BaseModel], name: str) -> type[BaseModel]:
    if not cls.__pydantic_complete__:
        cls.model_rebuild()  # its annotations resolved where it was defined
    field = cls.model_fields[name]
    config = ConfigDict(**{**cls.model_config, "extra": "ignore", "defer_build": False})
    return create_model(  # type: ignore[no-any-return, call-overload]
        f"{cls.__name__}_{name}",
        __config__=config,
        __module__=cls.__module__,
        **{name: (field.annotation, field)},
    )


class Event(Model):
    """A webhook event: the payload plus what the delivery's headers said about it.

    Subclasses set ``event_name`` (the ``X-GitHub-Event`` value) and, per action, narrow
    ``action``.
    Every event has the accessors below whatever its shape, so generic code (logging,
    routing, ``Context``) never needs to know the model.

    A delivery's event (``ctx.event``) is built by :meth:`of`: each field is validated
    from the payload the first time it is read, so a handler that reads ``event.issue``
    does not pay for building the repository, the sender and the rest. Anything that needs
    the whole event (``model_dump``, ``==``, ``repr``, a copy, extras) validates the rest
    then. A field that does not fit its model raises
    :class:`~framework.errors.InvalidPayload` where it is read, naming it.
    """

    event_name: ClassVar[str] = ""

    action: str | None = None
    sender: User | None = None
    repository: Repository | None = None
    installation: Installation | None = None
    organization: Organization | None = None

    _raw: dict[str, Any] | None = PrivateAttr(default=None)
    _raw_json: bytes | None = PrivateAttr(default=None)
    _delivery_id: str | None = PrivateAttr(default=None)
    _name: str = PrivateAttr(default="")
    _pending: str | None = PrivateAttr(default=None)
    """While fields wait to be validated, the event's label for errors (``issues.opened``)."""

    @classmethod
    def of(
        cls,
        payload: dict[str, Any] | bytes,
        *,
        name: str,
        label: str,
        delivery_id: str | None = None,
        by_field: bool = True,
    ) -> Self:
        """The event of ``payload`` (a dict, or JSON bytes) for event ``name`` (``label``, as
        ``issues.opened``, names it in errors). ``by_field``: no field validated yet, each
        when first read; otherwise, and for a model whose fields cannot be validated one at a
        time (:func:`_by_field`), validated whole now. What does not fit raises
        :class:`~framework.errors.InvalidPayload` naming it.

        >>> from framework.events import IssuesOpened
        >>> body = b'{"issue": {"id": 1, "number": 7, "title": "Hi"}}'
        >>> event = IssuesOpened.of(body, name="issues", label="issues.opened")
        >>> event.issue.number, event.issue.title  # the rest of the payload is not read
        (7, 'Hi')
        >>> IssuesOpened.of(b'{"issue": {"id": 1}}', name="issues", label="issues.opened").issue
        Traceback (most recent call last):
        framework.errors.InvalidPayload: issues.opened payload does not fit IssuesOpened: \
issue.number: Field required; issue.title: Field required
        """
        source = "_raw" if isinstance(payload, dict) else "_raw_json"
        if not (by_field and _by_field(cls)):
            try:
                if isinstance(payload, dict):
                    whole = cls.model_validate(payload)
                else:
                    whole = cls.model_validate_json(payload)
            except ValidationError as exc:
                raise does_not_fit(label, cls, exc) from None
            private = whole.__pydantic_private__
            assert private is not None  # an event always has its private attributes
            private.update({source: payload, "_name": name, "_delivery_id": delivery_id})
            return whole
        event = cls.__new__(cls)
        object.__setattr__(event, "__dict__", {})
        object.__setattr__(event, "__pydantic_fields_set__", set())
        object.__setattr__(event, "__pydantic_extra__", {})
        private = {k: v.get_default() for k, v in cls.__private_attributes__.items()}
        private.update({source: payload, "_name": name, "_delivery_id": delivery_id})
        private["_pending"] = label
        object.__setattr__(event, "__pydantic_private__", private)
        return event

    def _validated(self, model: type[BaseModel]) -> BaseModel:
        """The payload validated against ``model``: the event's own, or one field's."""
        private = self.__pydantic_private__ or {}
        try:
            if private["_raw_json"] is not None:
                return model.model_validate_json(private["_raw_json"])
            return model.model_validate(private["_raw"])
        except ValidationError as exc:
            raise does_not_fit(private["_pending"] or self.name, type(self), exc) from None

    def _build_field(self, name: str) -> Any:
        model = _field_model(type(self), name)
        if model is None:
            self._build()
            return self.__dict__[name]
        built = self._validated(model)
        with _PLACING:  # a read of the same field in another thread may have placed it first
            value = self.__dict__.setdefault(name, built.__dict__[name])
            if name in built.model_fields_set:
                self.__pydantic_fields_set__.add(name)
        return value

    def _build(self) -> None:
        """Validate the fields not read yet (and the extras); those read stay as they are."""
        private = self.__pydantic_private__
        if private is None or private["_pending"] is None:
            return
        whole = self._validated(type(self))
        with _PLACING:
            if private["_pending"] is None:  # another thread built it meanwhile
                return
            built = {key: self.__dict__.get(key, value) for key, value in whole.__dict__.items()}
            self.__dict__.clear()
            self.__dict__.update(built)  # in the model's order, as a validated event has them
            self.__pydantic_fields_set__.update(whole.model_fields_set)
            object.__setattr__(self, "__pydantic_extra__", whole.__pydantic_extra__)
            private["_pending"] = None

    if not TYPE_CHECKING:  # as pydantic's own: mypy must not read every name as an attribute

        def __getattr__(self, name: str) -> Any:
            if name[:1] != "_" and (self.__pydantic_private__ or {}).get("_pending"):
                if name in type(self).model_fields:
                    return self._build_field(name)
                self._build()  # an extra, or no such field
            return super().__getattr__(name)

    def __dir__(self) -> Iterable[str]:
        return sorted({*super().__dir__(), *type(self).model_fields})

    def __setattr__(self, name: str, value: Any) -> None:
        if name[:1] != "_" and name not in type(self).model_fields:
            self._build()  # an extra: the others first, so that it is not lost among them
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        self._build()
        super().__delattr__(name)

    def __eq__(self, other: object) -> bool:
        """The same model, fields, extras, name and delivery id: however each was parsed
        (the payload kept as JSON or as a dict is a cache, not a difference)."""
        if not isinstance(other, Event):
            return NotImplemented
        self._build()
        other._build()
        return (
            type(self) is type(other)
            and self.__dict__ == other.__dict__
            and self.__pydantic_extra__ == other.__pydantic_extra__
            and (self.name, self.delivery_id) == (other.name, other.delivery_id)
        )

    def __iter__(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        self._build()
        return super().__iter__()

    def __repr_args__(self) -> Any:
        self._build()
        return super().__repr_args__()

    def __copy__(self) -> Self:
        self._build()
        return super().__copy__()

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        self._build()
        return super().__deepcopy__(memo)

    def __getstate__(self) -> dict[Any, Any]:
        self._build()
        return super().__getstate__()

    @property
    def model_extra(self) -> dict[str, Any] | None:
        """Fields the model does not declare, as sent."""
        self._build()
        return super().model_extra

    @property
    def model_fields_set(self) -> set[str]:
        """The fields the payload set (the others have their defaults)."""
        self._build()
        return super().model_fields_set

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """The event as a dict (pydantic's options); a field that does not fit raises
        :class:`~framework.errors.InvalidPayload`."""
        self._build()
        return super().model_dump(**options)

    def model_dump_json(self, **options: Any) -> str:
        """The event as JSON text (pydantic's options)."""
        self._build()
        return super().model_dump_json(**options)

    # Every other serialization (this event inside another model, a TypeAdapter) passes
    # here; pydantic wraps an error raised here in its own. No return annotation: pydantic
    # would then describe the output as that type in a JSON schema, instead of as the model.
    @model_serializer(mode="wrap")
    def _serialize_built(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        self._build()
        return handler(self)

    @property
    def name(self) -> str:
        """The event's name as sent in ``X-GitHub-Event`` (``"issues"``, ``"push"`` ...)."""
        return self._name or self.event_name

    @property
    def raw(self) -> dict[str, Any]:
        """The payload exactly as it arrived, for fields no model describes."""
        raw = self._raw
        if raw is None:
            raw = self._raw = pydantic_core.from_json(self._raw_json or b"{}")
        return raw

    @property
    def delivery_id(self) -> str | None:
        """``X-GitHub-Delivery``: unique per delivery, kept when GitHub redelivers it."""
        return self._delivery_id

    @property
    def installation_id(self) -> int | None:
        """The id of the installation this event was sent for, if any."""
        return self.installation.id if self.installation is not None else None

    @property
    def repository_full_name(self) -> str | None:
        """``owner/name`` of the event's repository, if it has one."""
        return self.repository.full_name if self.repository is not None else None


class GenericEvent(Event):
    """Any event no model describes: the accessors work, the rest is in ``raw`` and extras."""
