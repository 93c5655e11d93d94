from django.contrib import admin
from django.urls import URLResolver, include, path
from django.urls.resolvers import RoutePattern
from django.views.generic import RedirectView

from registry.auth import access
from registry.auth import views as auth_views

# The registry's /v2/ routes first: they take nearly every request.
urlpatterns = [
    path("", include("registry.urls")),
    path("admin/", admin.site.urls),
    # The site's front page ("View site" in the admin) is the operator console.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    path(access.TOKEN_ROUTE, auth_views.token, name="token"),
    # The management API's URLconf is imported by the first request under /api/ (or the first
    # reverse(), which reads every URLconf): include() would import it now, and it alone brings
    # rest_framework's views, drf_spectacular and what they import (requests, yaml, pygments,
    # django.test, psycopg even on SQLite), ~24 MiB and 0.25 s in each server process that the
    # registry's clients never use. Given a dotted name, URLResolver imports it when first asked.
    URLResolver(RoutePattern("api/", is_endpoint=False), "registry.auth.api"),
]
