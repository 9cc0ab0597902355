import pytest

from runoff.documents import yaml_data
from runoff.errors import InvalidInput, ProductInvalid


def test_yaml_text_becomes_data():
    assert yaml_data("id: x\nterms: [3, 6]\n", source="p.yaml") == {"id": "x", "terms": [3, 6]}


def test_a_syntax_error_names_the_source_line_and_column_with_the_callers_error():
    with pytest.raises(ProductInvalid, match=r"p\.yaml: not valid YAML at line 2, column \d+") as info:
        yaml_data("id: x\nname: a: b\n", source="p.yaml", error=ProductInvalid, field="FILE")
    assert info.value.field == "FILE" and isinstance(info.value, InvalidInput)
