from django.contrib import admin
from django.urls import include, path

from registry.auth import views as auth_views

# The registry's /v2/ routes first: they take nearly every request.
urlpatterns = [
    path("", include("registry.urls")),
    path("admin/", admin.site.urls),
    path("token", auth_views.token, name="token"),
    path("api/", include("registry.auth.api")),
]
