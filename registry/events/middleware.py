"""Who changes things through the admin and the management API, for the audit log.

The actor is found only when a change is recorded (``registry.events.audit``
calls the function): reading the session's user costs a query, and most
requests record nothing. The management API authenticates in its views
(API tokens), and sets the user it found on the request this reads.
/v2/ runs without middleware: ``registry.endpoint`` sets its own actor.
"""

from collections.abc import Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase

from registry.auth.credentials import client_address
from registry.events import audit


class AuditActorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        with audit.acting(lambda: actor_of(request)):
            return self.get_response(request)


def actor_of(request: HttpRequest) -> audit.Actor:
    user = getattr(request, "user", None)
    name = user.get_username() if user is not None and user.is_authenticated else audit.ANONYMOUS
    return audit.Actor(name, client_address(request))
