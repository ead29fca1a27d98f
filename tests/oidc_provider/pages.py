"""The two HTML pages a browser may see (local demos): the login form and "logged out"."""

from __future__ import annotations

from html import escape

from .models import UserClaims

LOGIN_FIELDS = ("sub", "email", "given_name", "usual_name")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def login_form(*, action: str, login_id: str, client_id: str, prefill: UserClaims) -> str:
    rows = "".join(
        f'<p><label>{name} <input name="{name}" value="{escape(str(prefill.get(name, "")))}"'
        f"{' required' if name == 'sub' else ''}></label></p>"
        for name in LOGIN_FIELDS
    )
    body = (
        f"<p>Sign in to <b>{escape(client_id)}</b> (test provider: any user is accepted).</p>"
        f'<form method="post" action="{escape(action)}">'
        f'<input type="hidden" name="login_id" value="{escape(login_id)}">{rows}'
        '<button name="action" value="login">Sign in</button> '
        '<button name="action" value="deny" formnovalidate>Deny</button></form>'
    )
    return _PAGE.format(title="OIDC test provider: sign in", body=body)


def logged_out_page() -> str:
    return _PAGE.format(title="Signed out", body="<p>You have been signed out.</p>")
