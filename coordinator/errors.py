"""The one error hierarchy of the project, mapped to HTTP by ``api.middlewares``.

::

    CoordinatorError
     ├── InvalidRequest     400  (``detail`` is a message or a DRF-style field dict)
     ├── NotAuthenticated   401
     ├── PermissionDenied   403
     ├── NotFound           404
     ├── Conflict           409
     ├── Throttled          429
     ├── Unavailable        503  (a dependency such as LiveKit cannot be reached)
     └── UpstreamError      502  (a dependency answered with an error)

Every error carries the JSON body the contract prescribes for it (``body``); by default
``{"detail": message}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

JSONBody = dict[str, Any]


class CoordinatorError(Exception):
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "A server error occurred."

    def __init__(self, message: str | None = None, *, body: JSONBody | None = None) -> None:
        self.message = message or self.default_message
        self.body: JSONBody = body if body is not None else {"detail": self.message}
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.body!r})"


class InvalidRequest(CoordinatorError):
    status = 400
    default_message = "Invalid request."

    @classmethod
    def fields(cls, errors: dict[str, Any]) -> InvalidRequest:
        """A DRF-style field error body: ``{"field": ["message", ...]}``."""
        return cls("Invalid request.", body=errors)


class NotAuthenticated(CoordinatorError):
    status = 401
    default_message = "Authentication credentials were not provided."


class PermissionDenied(CoordinatorError):
    status = 403
    default_message = "You do not have permission to perform this action."


class NotFound(CoordinatorError):
    status = 404
    default_message = "Not found."


class Conflict(CoordinatorError):
    status = 409
    default_message = "Conflict."


class Throttled(CoordinatorError):
    status = 429
    default_message = "Request was throttled."


class UpstreamError(CoordinatorError):
    status = 502
    default_message = "An upstream service failed."


class Unavailable(CoordinatorError):
    status = 503
    default_message = "A dependency is unavailable."


class ConfigurationError(Exception):
    """Raised at start when the environment holds an invalid setting; names the variable."""
