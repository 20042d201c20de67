"""No hard-coded colour in the UI: every colour comes from the theme's variables (`$error` in
CSS and content markup, `theme_style(app, "error")` for Rich text), so every theme is legible.

The scanner reads each `lorabake_tui/ui` Python file's string literals (not comments or
docstrings) and each stylesheet, and reports a colour name or value where a style is given:
hex (#e5534b) and rgb()/hsl()/color(n) anywhere; a colour name as a whole style string
("bold red"), in a markup tag ("[yellow]"), or in a CSS value (`color: red;`); and
Color(255, 0, 0)-like calls with literal numbers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rich.color import Color as RichColor
from rich.color import ColorParseError as RichColorParseError
from textual.color import Color, ColorParseError

import lorabake_tui.ui

UI = Path(lorabake_tui.ui.__file__).resolve().parent

# a colour's name parses as one, but these three take the colour from the terminal or from
# what is underneath: no theme overrides them, so they are allowed
NOT_A_FIXED_COLOUR = {"default", "ansi_default", "transparent"}
STYLE_WORDS = {"bold", "b", "dim", "d", "italic", "i", "underline", "u", "underline2", "uu",
               "strike", "s", "reverse", "r", "blink", "blink2", "conceal", "overline", "o",
               "frame", "encircle", "not", "on", "none"}
LONG_HEX = re.compile(r"#(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6})(?![\w-])")
SHORT_HEX = re.compile(r"#[0-9a-fA-F]{3,4}")  # only as a whole value: "#add" may be an id
FUNCTION = re.compile(r"\b(?:rgba?|hsla?|color)\(")
MARKUP_TAG = re.compile(r"\[([^\[\]\n]+)\]")
CSS_PART = re.compile(r"([^{};]*)([{};]|$)")  # a selector ends with "{", a declaration not
CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def is_colour_word(word: str) -> bool:
    """A named colour (Rich's or CSS's), a hex value, or a function of numbers."""
    word = word.lower().strip(",")
    if SHORT_HEX.fullmatch(word) or LONG_HEX.fullmatch(word) or FUNCTION.match(word):
        return True
    if not re.fullmatch(r"[a-z][a-z0-9_]*", word) or word in NOT_A_FIXED_COLOUR:
        return False
    for parse, error in ((Color.parse, ColorParseError), (RichColor.parse, RichColorParseError)):
        try:
            parse(word)
        except error:
            continue
        return True
    return False


def style_colours(style: str) -> list[str]:
    """The colours in a style string ("bold red on black" -> red, black), if it is one."""
    words = style.split()
    if not words or any(not (w.lower() in STYLE_WORDS or w.startswith("$")
                             or w.endswith("%") or is_colour_word(w)) for w in words):
        return []  # prose, a name, a path: not a style
    return [w for w in words if is_colour_word(w)]


def css_colours(css: str) -> list[str]:
    """The colours in the declarations of a stylesheet (selectors are skipped)."""
    found = []
    for text, end in CSS_PART.findall(CSS_COMMENT.sub("", css)):
        if end == "{" or ":" not in text:
            continue
        value = text.split(":", 1)[1]
        found += [w for w in re.split(r"[\s,]+", value) if w and is_colour_word(w)]
        found += LONG_HEX.findall(value) + FUNCTION.findall(value)
    return found


def string_colours(text: str, *, css: bool = False) -> list[str]:
    """The colours one line of a Python string literal gives: a style, markup, hex, CSS."""
    found = LONG_HEX.findall(text) + FUNCTION.findall(text) + style_colours(text)
    for tag in MARKUP_TAG.findall(text):
        found += [w for w in tag.lstrip("/").split() if is_colour_word(w)]
    if css:
        found += css_colours(text)
    return list(dict.fromkeys(found))  # "#e5534b" is both a hex and a style: once


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _literal_colour_call(node: ast.Call) -> bool:
    """Color(255, 0, 0), Color.from_rgb(...), Style(color=Color(...)) with numbers."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    numbers = [a for a in node.args if isinstance(a, ast.Constant)
               and isinstance(a.value, (int, float)) and not isinstance(a.value, bool)]
    return name in {"Color", "from_rgb", "from_triplet", "from_hsl", "ColorTriplet"} \
        and len(node.args) >= 3 and len(numbers) == len(node.args)


def python_colours(source: str) -> list[tuple[int, str]]:
    """(line, what) for each hard-coded colour in a Python module."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            css = "{" in node.value and ":" in node.value  # DEFAULT_CSS, inline stylesheets
            for n, line in enumerate(node.value.splitlines(), start=node.lineno):
                found += [(n, c) for c in string_colours(line, css=css)]
        elif isinstance(node, ast.Call) and _literal_colour_call(node):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def stylesheet_colours(css: str) -> list[tuple[int, str]]:
    found = []
    for n, line in enumerate(CSS_COMMENT.sub(lambda m: "\n" * m[0].count("\n"), css)
                             .splitlines(), start=1):
        found += [(n, c) for c in css_colours(line)]
    return found


def scan() -> dict[str, list[tuple[int, str]]]:
    """ui-relative path -> its hard-coded colours, for every UI file that has any."""
    out = {}
    for path in sorted([*UI.rglob("*.py"), *UI.rglob("*.tcss")]):
        text = path.read_text("utf-8")
        found = python_colours(text) if path.suffix == ".py" else stylesheet_colours(text)
        if found:
            out[path.relative_to(UI).as_posix()] = found
    return out


# ---- the rule ----------------------------------------------------------------------------
def test_no_hard_coded_colours_in_the_ui():
    found = scan()
    assert not found, "hard-coded colours (take them from the theme, see ui/palette.py):\n" + \
        "\n".join(f"  ui/{path}:{line}: {what}" for path, hits in found.items()
                  for line, what in hits)


def test_the_scan_covers_the_ui_and_sees_a_colour_added_to_a_real_file():
    assert len(list(UI.rglob("*.py"))) > 30 and len(list(UI.rglob("*.tcss"))) >= 7
    # a real screen with one fixed colour added is flagged at that line (the scan is not blind)
    text = (UI / "screens" / "train.py").read_text("utf-8")
    planted = text + 'WARN = Text("late", style="bold red")\n'
    assert python_colours(text) == []
    assert python_colours(planted) == [(planted.count("\n"), "red")]


# ---- the scanner -------------------------------------------------------------------------
def test_scanner_finds_colours_in_styles_markup_css_and_values():
    source = '''
"""A docstring may say red, [red] or #ff0000: prose, not a style."""
from rich.text import Text
a = Text("x", style="bold red")  # a comment may say yellow
b = "[bold yellow]careful[/]"
c = "[$text-error]fine[/] [on blue]not[/]"
d = Style(color="#E5534B")
e = "rgb(10, 20, 30)"
f = "grey50"
g = Color(255, 0, 0)
CSS = """
Thing { color: magenta; background: $surface; }
Thing:focus { border: round #abc; }
"""
'''
    found = python_colours(source)
    assert [line for line, _ in found] == [4, 5, 6, 7, 8, 9, 10, 12, 13]
    assert {what for _, what in found} >= {"red", "yellow", "blue", "#E5534B", "rgb(", "grey50",
                                           "magenta", "#abc"}


def test_scanner_leaves_theme_variables_and_plain_text_alone():
    source = '''
x = Text("saved", style="dim")
y = "[b]esc[/b] close · [bold $text-warning]unsaved[/]"
z = query_one("#bk-checks")
w = "the red channel is clipped"
v = Content.assemble(("low-res", "bold $text-warning"))
u = "[ ] off, [✓] on"
CSS = "Checkbox > .toggle--button { color: $text-muted; background: transparent; }"
'''
    assert python_colours(source) == []
    css = "/* no red here */\n#bk-checks Checkbox { border: none; height: 1; }\n"
    assert stylesheet_colours(css) == []
    assert stylesheet_colours("A {\n  color: red;\n}\n") == [(2, "red")]
