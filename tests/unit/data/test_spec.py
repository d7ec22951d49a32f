"""`raysys.data.spec`, cocktail specs: one-line errors naming the field and the fix (in
pydantic's validation and again for specs built in code), the task checks against what
is available, and the hash that keys the data a spec makes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raysys.data.spec import (
    GENERAL_TASK,
    MATH_TASK,
    CocktailComponent,
    CocktailSpec,
    parse_spec,
    spec_hash,
    validate_spec,
)
from raysys.errors import UserError


def _spec(weights: dict[str, float], **kw) -> CocktailSpec:
    comps = [{"task": t, "weight": w} for t, w in weights.items()]
    return CocktailSpec.model_validate({"components": comps, **kw})


AVAILABLE = {"fpb": 100, "fin_ner": 50, GENERAL_TASK: 100, MATH_TASK: 100}
TEST_ONLY = {"fomc_stance"}


@pytest.mark.parametrize(
    ("data", "field", "fix"),
    [
        ({"components": [{"task": "fpb", "weight": 0}]}, "`cocktail.components`", "weight > 0"),
        ({"components": [{"task": "fpb"}, {"task": "fpbx"}]}, "components[1].task", "fpb"),
        ({"components": [{"task": "fomc_stance"}]}, "components[0].task", "only a test"),
        ({"components": [{"task": "fpb"}], "general": 1.2}, "`cocktail.general`", "[0, 1)"),
        ({"components": [{"task": "fpb"}], "math": -0.1}, "`cocktail.math`", "[0, 1)"),
        (
            {"components": [{"task": "fpb"}], "general": 0.5, "math": 0.5},
            "`cocktail.general`",
            "< 1",
        ),
        ({"components": [{"task": "fpb"}, {"task": "fpb"}]}, "components[1].task", "once"),
        ({"components": [{"task": GENERAL_TASK}]}, "components[0].task", "cocktail.general"),
        ({"components": []}, "`cocktail.components`", "at least one"),
    ],
)
def test_validate_spec_errors_are_one_line_and_name_the_field(data, field, fix):
    # Pydantic-level problems are caught by parse_spec; validate_spec re-checks an
    # unvalidated spec (model_construct) so it also guards specs built in code.
    try:
        spec = parse_spec(data)
    except UserError as e:
        messages = [str(e)]
        comps = [_comp(c) for c in data["components"]]
        raw = CocktailSpec.model_construct(**{**data, "components": comps})
        with pytest.raises(UserError) as again:
            validate_spec(raw, AVAILABLE, TEST_ONLY)
        messages.append(str(again.value))
    else:
        with pytest.raises(UserError) as e:
            validate_spec(spec, AVAILABLE, TEST_ONLY)
        messages = [str(e.value)]
    for msg in messages:
        assert "\n" not in msg
        assert field in msg and fix in msg, msg


def _comp(c: dict) -> CocktailComponent:
    return CocktailComponent.model_construct(**{"weight": 1.0, **c})


def test_negative_weight_is_rejected_by_pydantic():
    with pytest.raises(ValidationError):
        _spec({"fpb": -1.0})
    with pytest.raises(UserError) as e:
        parse_spec({"components": [{"task": "fpb"}, {"task": "fin_ner", "weight": -1}]})
    assert str(e.value).startswith("`cocktail.components[1].weight`: weight must be")
    assert "\n" not in str(e.value)


def test_unknown_key_and_missing_pool_messages():
    with pytest.raises(UserError, match=r"^`cocktail\.sise`: Extra inputs"):
        parse_spec({"components": [{"task": "fpb"}], "sise": 3})
    spec = _spec({"fpb": 1.0}, math=0.2)
    with pytest.raises(UserError, match=r"^`cocktail\.math`: no arith_math train rows"):
        validate_spec(spec, {"fpb": 10}, set())
    validate_spec(_spec({"fpb": 1.0, "fin_ner": 0.0}), AVAILABLE, TEST_ONLY)  # fine


def test_spec_hash_shape_and_sensitivity():
    spec = _spec({"a": 1.0, "b": 2.0})
    key = spec_hash(spec, 0.5, 0, {})
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == spec_hash(spec, 0.5, 0, {}) == spec_hash(spec, 0.5, 0)
    assert spec_hash(spec, 1, 0, {}) == spec_hash(spec, 1.0, 0, {})
    others = {spec_hash(spec, 0.25, 0, {}), spec_hash(spec, 0.5, 1, {})}
    others.add(spec_hash(spec, 0.5, 0, {"x": 1}))
    assert key not in others and len(others) == 3


def test_spec_hash_ignores_component_order_and_sees_every_field():
    ab = _spec({"a": 1.0, "b": 2.0})
    assert spec_hash(ab, 1.0, 0) == spec_hash(_spec({"b": 2.0, "a": 1.0}), 1.0, 0)
    changed = [
        _spec({"a": 1.0, "b": 3.0}),
        _spec({"a": 1.0, "b": 2.0}, general=0.1),
        _spec({"a": 1.0, "b": 2.0}, size=10),
        _spec({"a": 1.0, "b": 2.0}, allow_oversample=True),
        _spec({"a": 1.0, "b": 2.0}, name="named"),
    ]
    keys = {spec_hash(s, 1.0, 0) for s in changed}
    assert len(keys) == len(changed) and spec_hash(ab, 1.0, 0) not in keys


def test_parse_spec_quotes_a_wrongly_typed_value():
    with pytest.raises(UserError) as e:
        parse_spec({"components": [{"task": "fpb", "weight": "heavy"}]})
    msg = str(e.value)
    assert msg.startswith("`cocktail.components[0].weight`: Input should be a valid number")
    assert str(e.value).endswith("(got 'heavy')")
    with pytest.raises(UserError, match=r"^`cocktail.size`: Input should be greater than or equal"):
        parse_spec({"components": [{"task": "fpb"}], "size": 0})


def test_a_component_without_rows_or_an_unknown_one_names_the_choices():
    with pytest.raises(UserError, match=r"`cocktail.components\[0\].task`: fpb has no train rows"):
        validate_spec(_spec({"fpb": 1.0}), {"fpb": 0}, set())
    with pytest.raises(UserError) as e:
        validate_spec(_spec({"nope": 1.0}), AVAILABLE, TEST_ONLY)
    assert str(e.value).endswith("unknown task 'nope'; choose one of fin_ner, fpb")
