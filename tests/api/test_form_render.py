"""The JSON-Schema form renderer on its own: escaping, enum values, arrays, booleans."""

from __future__ import annotations

from flowmonkey.api.form_render import fields, parse_submission, render_page

SCHEMA = {
    "type": "object",
    "properties": {
        "level": {"enum": [1, 2, 3], "title": "Level"},
        "note": {"type": "string", "description": "<b>bold</b> help"},
        "colours": {"type": "array", "items": {"type": "string", "enum": ["red", "blue"]}},
        "ok": {"type": "boolean"},
    },
}


def test_values_are_escaped_and_enums_keep_their_type() -> None:
    values, problems = parse_submission(
        SCHEMA, None, {"level": ["2"], "note": ['"><script>x</script>'], "colours": ["red", "blue"]}
    )
    assert problems == {}
    assert values == {
        "level": 2,
        "note": '"><script>x</script>',
        "colours": ["red", "blue"],
        "ok": False,
    }
    html = render_page(title="<T>", controls=fields(SCHEMA), values=values)
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html and "<title>&lt;T&gt;</title>" in html
    assert "<option selected>2</option>" in html
    assert "<fieldset><legend>Colours" in html or "<legend>Colours" in html
    assert 'name="colours" value="red" checked' in html


def test_a_message_page_has_no_form() -> None:
    html = render_page(title="Done", controls=None, message="Thanks")
    assert "<form" not in html and '<p role="status">Thanks</p>' in html
