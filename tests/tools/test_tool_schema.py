from __future__ import annotations

import enum
import threading
from typing import Annotated, Any, Literal

import pydantic
import pytest
from pydantic import BaseModel, Field

from flowkit.tools import RunContext, ToolDefinitionError, function_tool
from flowkit.tools.schema import json_schema_of, read_signature


class Address(BaseModel):
    street: str
    title: str = "home"  # a field named like a JSON-schema keyword must survive cleaning


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Booking:
    pass


def test_defaults_make_arguments_optional_and_the_schema_is_openai_style() -> None:
    @function_tool
    def f(city: str, days: int = 3) -> str:
        return city

    assert f.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer", "default": 3},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_no_arguments_gives_an_empty_object_schema() -> None:
    @function_tool
    async def ping() -> str:
        return "pong"

    assert ping.parameters == {
        "type": "object", "properties": {}, "required": [], "additionalProperties": False,
    }


def test_optional_is_nullable_and_not_required() -> None:
    @function_tool
    def f(note: str | None = None) -> None: ...

    prop = f.parameters["properties"]["note"]
    assert prop["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert prop["default"] is None
    assert f.parameters["required"] == []


def test_literal_becomes_enum_and_enum_class_a_def() -> None:
    @function_tool
    def f(unit: Literal["C", "F"], color: Color) -> None: ...

    props = f.parameters["properties"]
    assert props["unit"] == {"type": "string", "enum": ["C", "F"]}
    assert props["color"] == {"$ref": "#/$defs/Color"}
    assert f.parameters["$defs"]["Color"] == {"type": "string", "enum": ["red", "green"]}


def test_list_of_int() -> None:
    @function_tool
    def f(ids: list[int]) -> None: ...

    assert f.parameters["properties"]["ids"] == {"type": "array", "items": {"type": "integer"}}


def test_nested_model_is_a_def_and_user_field_named_title_is_kept() -> None:
    @function_tool
    def f(address: Address) -> None: ...

    assert f.parameters["properties"]["address"] == {"$ref": "#/$defs/Address"}
    nested = f.parameters["$defs"]["Address"]
    assert set(nested["properties"]) == {"street", "title"}
    assert "title" not in nested["properties"]["street"]  # pydantic's generated titles go
    assert nested["required"] == ["street"]


def test_annotated_field_gives_description_and_constraints() -> None:
    @function_tool
    def f(n: Annotated[int, Field(ge=1, le=9, description="How many")] = 1) -> None: ...

    assert f.parameters["properties"]["n"] == {
        "type": "integer", "minimum": 1, "maximum": 9, "description": "How many", "default": 1,
    }


def test_field_as_default_is_honoured() -> None:
    @function_tool
    def f(n: int = Field(default=2, description="Count")) -> None: ...

    assert f.parameters["properties"]["n"]["description"] == "Count"
    assert f.parameters["required"] == []


def test_google_docstring_gives_description_and_argument_docs() -> None:
    @function_tool
    def f(city: str, days: Annotated[int, Field(description="explicit wins")] = 1) -> None:
        """Look up the weather.

        Uses the national service.

        Args:
            city: The city, e.g. "Paris".
            days: Ignored, because Field has a description.

        Returns:
            The forecast.
        """

    assert f.description == "Look up the weather.\n\nUses the national service."
    assert f.parameters["properties"]["city"]["description"] == 'The city, e.g. "Paris".'
    assert f.parameters["properties"]["days"]["description"] == "explicit wins"


def test_rest_docstring_argument_docs() -> None:
    @function_tool
    def f(city: str, days: int = 1) -> None:
        """Look up the weather.

        :param city: The city.
        :param days: How many days ahead.
        """

    assert f.description == "Look up the weather."
    props = f.parameters["properties"]
    assert props["city"]["description"] == "The city."
    assert props["days"]["description"] == "How many days ahead."


def test_numpy_docstring_argument_docs() -> None:
    @function_tool
    def f(city: str) -> None:
        """Look up the weather.

        Parameters
        ----------
        city : str
            The city.
        """

    assert f.parameters["properties"]["city"]["description"] == "The city."


def test_name_and_description_override() -> None:
    @function_tool(name="weather-now", description="Custom.")
    def f(city: str) -> None:
        """Docstring summary."""

    assert (f.name, f.description) == ("weather-now", "Custom.")


def test_run_context_is_found_by_annotation_anywhere_and_left_out() -> None:
    @function_tool
    async def first(ctx: RunContext[Booking], city: str) -> None: ...

    @function_tool
    async def last(city: str, context: RunContext) -> None: ...

    @function_tool
    async def named_ctx_but_a_string(ctx: str) -> None: ...

    assert first.signature.context_param == "ctx"
    assert list(first.parameters["properties"]) == ["city"]
    assert last.signature.context_param == "context"
    assert list(last.parameters["properties"]) == ["city"]
    # Detected by annotation, not by name or position.
    assert named_ctx_but_a_string.signature.context_param is None
    assert list(named_ctx_but_a_string.parameters["properties"]) == ["ctx"]


def test_return_annotation_naming_a_later_class_is_not_resolved() -> None:
    @function_tool
    async def handoff(ctx: RunContext) -> DefinedLater:  # type: ignore[name-defined]  # noqa: F821
        raise NotImplementedError

    assert handoff.parameters["properties"] == {}


def test_arguments_model_forbids_extra_fields() -> None:
    @function_tool
    def f(city: str) -> None: ...

    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        f.args_model.model_validate({"city": "a", "other": 1})


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: read_signature(_untyped), "'city' has no type annotation"),
        (lambda: read_signature(_star_args), r"\*args cannot be described"),
        (lambda: read_signature(_typed, name="bad name!"), "not a valid tool name"),
        (lambda: read_signature(_two_contexts), "both ask for the RunContext"),
        (lambda: read_signature(_lock), "cannot be described as JSON"),
        (lambda: read_signature(_unresolvable), "cannot resolve a parameter annotation"),
    ],
)
def test_definition_errors_name_the_problem(make: Any, match: str) -> None:
    with pytest.raises(ToolDefinitionError, match=match):
        make()


def test_json_schema_of_a_plain_model() -> None:
    assert json_schema_of(Address)["required"] == ["street"]


def _untyped(city):  # type: ignore[no-untyped-def]
    return city


def _star_args(*args: int) -> None: ...


def _typed(city: str) -> None: ...


def _two_contexts(a: RunContext, b: RunContext) -> None: ...


def _lock(lock: threading.Lock) -> None: ...


def _unresolvable(x: NotDefinedAnywhere) -> None: ...  # type: ignore[name-defined]  # noqa: F821
