from typing import Any

from support import Collect, Numbers, to_text

import flowkit as fk
from flowkit.following import Following


async def test_following_subscribes_to_every_output_of_a_type_until_disposed() -> None:
    g = fk.Graph("followed")
    g.add(Numbers([1, 2, 3]), name="numbers") >> g.add(to_text(), name="text") >> Collect()
    runner = fk.GraphRunner(g)
    await runner.start()
    seen: list[Any] = []
    following = Following().follow(runner, int, seen.append).follow(runner, str, seen.append)
    assert following.ports == ["numbers.out", "text.out"]
    unsubscribed: list[Any] = []
    Following().follow(runner, int, unsubscribed.append).dispose()
    await runner.wait()
    following.dispose()
    await runner.close()
    assert [x for x in seen if isinstance(x, int)] == [1, 2, 3]
    assert [x for x in seen if isinstance(x, str)] == ["1", "2", "3"]
    assert unsubscribed == []
    assert following.ports == ["numbers.out", "text.out"]  # kept after dispose
