"""The one registry mechanism: register, refuse duplicates, explain unknown names, list by wildcard."""
import pytest

from wsolbench.registry import Registry, RegistryError


@pytest.fixture
def reg():
    r = Registry("widget")

    @r.register("i2c", description="full", use_gc=True)
    @r.register("i2c-sc", description="sc only", use_gc=False)
    class Widget:
        def __init__(self, size=1, use_gc=True):
            self.size, self.use_gc = size, use_gc

    @r.register()
    def cam(size=1):
        """Class activation mapping.

        More text that is not the description."""
        return ("cam", size)

    return r


def test_duplicate_name_is_refused(reg):
    with pytest.raises(RegistryError, match="widget 'cam' is already registered"):
        reg.register("cam")(object)


def test_unknown_name_lists_close_names(reg):
    with pytest.raises(RegistryError) as err:
        reg.get("i2c-cs")
    msg = str(err.value)
    assert "unknown widget 'i2c-cs'" in msg and "did you mean" in msg and "i2c-sc" in msg
    assert "\n" not in msg


def test_wildcard_listing(reg):
    assert reg.names() == ["cam", "i2c", "i2c-sc"]
    assert reg.names("i2c*") == ["i2c", "i2c-sc"]
    assert reg.names("*-sc") == ["i2c-sc"]
    assert reg.names("nothing*") == []


def test_variants_are_one_class_with_other_defaults(reg):
    full, sc = reg.build("i2c"), reg.build("i2c-sc")
    assert type(full) is type(sc)
    assert full.use_gc is True and sc.use_gc is False
    assert reg.build("i2c-sc", use_gc=True).use_gc is True  # explicit arguments win over the variant's defaults
    assert reg.get("cam").description == "Class activation mapping."
    assert reg.build("cam", size=3) == ("cam", 3)
