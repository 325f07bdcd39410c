import pytest

from workbench.registry import Registry, UnknownNameError


def test_register_get_names_and_info():
    reg = Registry("thing")

    @reg.register("alpha", family="a")
    def alpha():
        return 1

    reg.register("beta", family="b")(lambda: 2)
    assert reg.get("alpha") is alpha
    assert reg.names() == ["alpha", "beta"]
    assert reg.names("b*") == ["beta"]
    assert reg.names(family="a") == ["alpha"]
    assert reg.info("beta") == {"family": "b"}


def test_unknown_name_suggests_close_ones_and_lists_all():
    reg = Registry("method")
    reg.register("lamp")(object())
    with pytest.raises(UnknownNameError, match=r"unknown method 'lmap' \(did you mean lamp\?\); known: lamp"):
        reg.get("lmap")


def test_double_registration_is_an_error():
    reg = Registry("model")
    reg.register("x")(object())
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("x")(object())
