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


def test_an_alias_is_the_same_entry_under_its_canonical_name(reg):
    @reg.register("acol-simplified", aliases=("acol",))
    class Head:
        pass

    assert reg.get("acol") is reg.get("acol-simplified") and reg.get("acol").name == "acol-simplified"
    assert reg.canonical("acol") == "acol-simplified" and "acol" in reg
    assert "acol" not in reg.names() and reg.aliases() == {"acol": "acol-simplified"}
    with pytest.raises(RegistryError, match="widget 'acol' is already registered"):
        reg.register("acol")(object)
    with pytest.raises(RegistryError, match="unknown widget 'acool'.*acol"):
        reg.get("acool")


def test_the_registry_imports_nothing_of_the_project():
    """The registry is plain data the loader (wsolbench.plugins) fills: no import back."""
    import ast
    import inspect

    import wsolbench.registry as registry

    tree = ast.parse(inspect.getsource(registry))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("wsolbench")], imported
    # and yet a lookup of a built-in name works from a bare import: the loader set the fill hook
    assert registry.METHODS.fill is not None and registry.METHODS.get("i2c").name == "i2c"


def test_list_methods_shows_the_alias_and_the_provenance_of_lambda2(run_cli):
    code, out, err = run_cli("list", "methods", "acol*")
    assert code == 0, err
    lines = out.splitlines()
    assert any("acol-simplified" in line and "no erasing branch" in line for line in lines)
    assert any(line.startswith("│ acol ") and "alias of acol-simplified" in line for line in lines), out
    code, out, err = run_cli("list", "methods", "i2c")
    assert code == 0, err
    assert "lambda2=0.01 (reference code's default, not the paper's; paper: robust from 1e-4 to 0.1)" in out
