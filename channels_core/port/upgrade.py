"""What the tool does not rewrite: the Django 1.x -> 4.2+ upgrade and Python 2 idioms, pointed out by line.

`django-upgrade --target-version 4.2` rewrites much of this mechanically; the
rest needs a person (an `on_delete` is a data decision).
"""

from __future__ import annotations

import ast

from .edits import Note

_GONE_MODULES = {
    "django.core.urlresolvers": "django.core.urlresolvers is gone: import from django.urls",
    "django.utils.six": "django.utils.six is gone: use six, or plain Python 3",
    "django.test.mock": "django.test.mock is gone: use unittest.mock",
}

_GONE_NAMES = {
    ("django.conf.urls", "url"): "django.conf.urls.url() is gone: use django.urls.re_path() (same regex) or path()",
    ("django.conf.urls", "patterns"): "patterns() is gone: urlpatterns is a plain list",
    ("django.shortcuts", "render_to_response"): "render_to_response() is gone: use render(request, template, context)",
    ("django.utils", "six"): "django.utils.six is gone: use six, or plain Python 3",
    ("django.utils.encoding", "python_2_unicode_compatible"): "python_2_unicode_compatible is gone: define __str__",
    ("django.utils.encoding", "force_text"): "force_text is gone: use force_str",
    ("django.utils.encoding", "smart_text"): "smart_text is gone: use smart_str",
    ("django.utils.translation", "ugettext"): "ugettext is gone: use gettext",
    ("django.utils.translation", "ugettext_lazy"): "ugettext_lazy is gone: use gettext_lazy",
    ("django.utils.translation", "ungettext"): "ungettext is gone: use ngettext",
}

_OLD_SETTINGS = {
    "MIDDLEWARE_CLASSES": (
        "MIDDLEWARE_CLASSES is ignored: use MIDDLEWARE (new-style middleware; "
        "django.utils.deprecation.MiddlewareMixin adapts old classes)"
    ),
    "TEMPLATE_DIRS": "TEMPLATE_DIRS is ignored: use TEMPLATES[...]['DIRS']",
    "TEMPLATE_CONTEXT_PROCESSORS": "TEMPLATE_CONTEXT_PROCESSORS is ignored: use TEMPLATES[...]['OPTIONS']",
    "TEMPLATE_DEBUG": "TEMPLATE_DEBUG is ignored: use TEMPLATES[...]['OPTIONS']['debug']",
}

_PY2_NAMES = {
    "unicode": "str",
    "basestring": "str",
    "xrange": "range",
    "unichr": "chr",
    "raw_input": "input",
    "long": "int",
}

_SESSION_AUTH = "django.contrib.auth.middleware.SessionAuthenticationMiddleware"
_RELATIONS = ("ForeignKey", "OneToOneField")


def upgrade_notes(path: str, tree: ast.Module) -> list[Note]:
    """One note per thing in this module that Django 4.2+ or Python 3 no longer accepts, in line order."""
    notes: list[Note] = []
    defined = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in _GONE_MODULES:
                notes.append(Note(path, node.lineno, _GONE_MODULES[node.module]))
            for alias in node.names:
                advice = _GONE_NAMES.get((node.module, alias.name))
                if advice:
                    notes.append(Note(path, node.lineno, advice))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in _GONE_MODULES:
                    notes.append(Note(path, node.lineno, _GONE_MODULES[alias.name]))
        elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in _OLD_SETTINGS:
                    notes.append(Note(path, node.lineno, _OLD_SETTINGS[target.id]))
        elif isinstance(node, ast.Call):
            notes.extend(_call_notes(path, node))
        elif isinstance(node, ast.FunctionDef) and node.name == "__unicode__":
            notes.append(Note(path, node.lineno, "__unicode__ is Python 2's: Python 3 calls __str__"))
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in _PY2_NAMES
            and node.id not in defined
        ):
            notes.append(Note(path, node.lineno, f"{node.id} is Python 2's: use {_PY2_NAMES[node.id]}"))
        elif isinstance(node, ast.Constant) and node.value == _SESSION_AUTH:
            notes.append(Note(path, node.lineno, "SessionAuthenticationMiddleware is gone (always on): remove it"))
    return sorted(notes, key=lambda n: n.line)


def _call_notes(path: str, node: ast.Call) -> list[Note]:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name in _RELATIONS and len(node.args) < 2 and not any(k.arg == "on_delete" for k in node.keywords):
        if not any(k.arg is None for k in node.keywords):  # **kwargs may carry it
            return [
                Note(
                    path,
                    node.lineno,
                    f"{name} needs on_delete (models.CASCADE was the 1.x default); "
                    "then makemigrations writes it into the migrations",
                )
            ]
    if isinstance(func, ast.Attribute) and name in ("is_authenticated", "is_anonymous") and not node.args:
        return [Note(path, node.lineno, f"user.{name} is a property now: drop the ()")]
    return []
