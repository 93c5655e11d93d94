from django.contrib import admin
from django.urls import include, path

from registry.auth import views as auth_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("token", auth_views.token, name="token"),
    path("api/", include("registry.auth.api")),
    path("", include("registry.urls")),
]
