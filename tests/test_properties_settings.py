"""Properties of settings parsing (gql_api.settings): any environment gives ``Settings``
or a ``SettingsError`` naming a variable, never another exception, and never shows a
secret; any constructor values give ``Settings`` or pydantic's ``ValidationError``.

Environment values are what a process can hold: no NUL, and lone surrogates only as
``os.environ`` decodes undecodable bytes (U+DC80-U+DCFF). The variables are read from
``Settings.model_fields``, so a new setting is covered without editing this file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import annotated_types
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AliasChoices, ValidationError

from gql_api.settings import Settings, SettingsError, load_settings
from tests.property_strategies import (
    BIG_SIZES,
    FEW,
    PROPERTY,
    SPECIAL_STRINGS,
    attempt,
    huge_ints,
    json_values,
    nasty_text,
)


def variables_of(name: str) -> list[str]:
    alias = Settings.model_fields[name].validation_alias
    if isinstance(alias, str):
        return [alias]
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"GQL_API_{name.upper()}"]


VARIABLES = sorted({v for name in Settings.model_fields for v in variables_of(name)})
SECRETS = ("GQL_API_DEV_SECRET", "GQL_API_COSMOS_KEY", "AZURE_STORAGE_CONNECTION_STRING")


def int_bounds(name: str) -> tuple[int, int] | None:
    info = Settings.model_fields[name]
    if info.annotation is not int:
        return None
    low, high = -(10**30), 10**30
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        elif isinstance(item, annotated_types.Le):
            high = int(item.le)  # type: ignore[call-overload]
    return low, high


INT_SETTINGS = {name: b for name in Settings.model_fields if (b := int_bounds(name)) is not None}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Exactly ``values`` of the settings' variables (any case), the rest untouched."""
    known = {variable.upper() for variable in VARIABLES}
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper() in known or name.upper().startswith("GQL_API_"):
                patch.delenv(name)
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def env_safe(text: str) -> str:
    """``text`` as the environment can hold it: NUL dropped, surrogates as escaped bytes."""
    return "".join(
        char if not 0xD800 <= ord(char) <= 0xDFFF else chr(0xDC80 + ord(char) % 128)
        for char in text.replace("\x00", "")
    )


env_values = st.one_of(
    nasty_text.map(env_safe),
    huge_ints.map(lambda number: str(number) if abs(number) < 10**4000 else "9" * 4400),
    st.floats().map(repr),
    st.sampled_from(
        [
            *("true", "false", "yes", "0", "1", "-1", "1e400", "nan", "inf", "", " ", "[1]"),
            *("sqlite", "memory", "dynamodb", "firestore", "cosmos", "dev", "jwt", "cognito"),
            *("firebase", "entra", "s3", "gcs", "azure", "aws", "gcp", "local", "debug", "full"),
            *("http://[", "http://example.com", "https://x", "http://localhost:1", "*", "a,,"),
            *("x" * 31, "x" * 32, "us-east-1", "eu-west-1_abc", "my-project-1", "\udcff" * 40),
        ]
    ),
)
environments = st.dictionaries(st.sampled_from(VARIABLES), env_values, max_size=6)


def load_or_refuse() -> Settings | SettingsError:
    result = attempt(SettingsError, load_settings)
    if isinstance(result, SettingsError):
        message = str(result)
        assert message.startswith("invalid settings: ")
        assert any(variable in message for variable in VARIABLES), message
    return result


@PROPERTY
@given(environments)
def test_load_settings_of_any_environment_gives_settings_or_a_settings_error(
    values: dict[str, str],
) -> None:
    with environment(values):
        result = load_or_refuse()
        if isinstance(result, Settings):
            assert result.store in ("sqlite", "memory", "dynamodb", "firestore", "cosmos")
            assert isinstance(result.introspection_enabled, bool)
            assert result.data_dir == result.sqlite_path.parent
            assert load_settings() == result  # read again, the same


@FEW
@given(st.sampled_from(VARIABLES), env_values)
def test_a_refused_variable_is_named_in_the_error(variable: str, value: str) -> None:
    with environment({variable: value}):
        result = load_or_refuse()
    if isinstance(result, SettingsError):
        # A value quoted in the message is the one set (a rule across variables names the
        # others it needs without quoting them: load_or_refuse checked it names one).
        quoted = {v for v in VARIABLES if f"{v}='" in str(result) or f'{v}="' in str(result)}
        assert quoted <= {variable}, str(result)


@PROPERTY
@given(st.sampled_from(sorted(INT_SETTINGS)), st.data(), st.sampled_from(["", " ", "+"]))
def test_integer_settings_accept_their_range_and_name_the_variable_otherwise(
    name: str, data: st.DataObject, sign: str
) -> None:
    low, high = INT_SETTINGS[name]
    around = st.sampled_from([low - 1, low, high, high + 1]) | st.integers(low - 5, high + 5)
    number = data.draw(huge_ints | around)
    variable = variables_of(name)[0]
    text = f"{sign}{number}" if abs(number) < 10**4000 else "9" * 4400
    with environment({variable: text}):
        result = load_or_refuse()
    if low <= number <= high and isinstance(result, SettingsError):
        assert f"{variable}=" not in str(result)  # refused for another reason, not this one
    elif low <= number <= high:
        assert getattr(result, name) == number
    else:
        assert isinstance(result, SettingsError) and f"{variable}=" in str(result)


@FEW
@given(st.sampled_from(SECRETS), st.text(min_size=8).map(env_safe), environments)
def test_a_settings_error_never_shows_a_secret(
    secret: str, value: str, others: dict[str, str]
) -> None:
    value = f"s3cr3t{value}"
    with (
        environment({**others, secret: value, "GQL_API_STORE": "bogus"}),
        pytest.raises(SettingsError) as refusal,
    ):
        load_settings()
    assert value not in str(refusal.value)


@pytest.mark.parametrize("variable", ["gql_api_store", "Gql_Api_Max_Depth", "gql_api_auth"])
def test_settings_error_for_a_lower_case_variable_names_it_not_a_type_error(
    variable: str,
) -> None:
    with environment({variable: "bogus"}), pytest.raises(SettingsError, match=variable.upper()):
        load_settings()


field_values = st.one_of(json_values, nasty_text, st.sampled_from(SPECIAL_STRINGS))
big = st.sampled_from(BIG_SIZES).map(lambda size: "9" * size)


@FEW
@given(
    st.dictionaries(
        st.sampled_from(sorted(Settings.model_fields)), st.one_of(field_values, big), max_size=5
    )
)
def test_the_constructor_of_any_values_gives_settings_or_a_validation_error(
    values: dict[str, Any],
) -> None:
    with environment({}):
        settings = attempt(ValidationError, lambda: Settings(**values))
    if isinstance(settings, ValidationError):
        assert settings.errors()
    else:
        assert isinstance(settings.introspection_enabled, bool)
        assert settings.images_cloud in (None, "s3", "gcs", "azure")
