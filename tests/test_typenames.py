from typing import Any

import pytest

import flowkit as fk
from flowkit.typenames import is_assignable, type_name


class Base:
    pass


class Child(Base):
    pass


@pytest.mark.parametrize(
    ("produced", "consumed", "ok"),
    [
        (int, int, True),
        (Child, Base, True),
        (Base, Child, False),
        (str, int, False),
        (Any, int, True),
        (int, Any, True),
        (int, object, True),
        (int, int | str, True),
        (int | str, int, False),
        (int | str, int | str | bytes, True),
        (list[str], list[str], True),
        (list[str], list[int], False),
        (list, list[int], True),
        (fk.Transcript, fk.Message, True),
        (fk.Message, fk.Transcript, False),
    ],
)
def test_is_assignable(produced: Any, consumed: Any, ok: bool) -> None:
    assert is_assignable(produced, consumed) is ok


def test_type_names() -> None:
    assert type_name(int) == "int"
    assert type_name(Any) == "Any"
    assert type_name(list[str]) == "list[str]"
    assert type_name(int | None) == "int | None"
    assert type_name(fk.Transcript) == "Transcript"
