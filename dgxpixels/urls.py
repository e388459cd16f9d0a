from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("batches.urls")),
    # daphne serves no static files of its own; these are small CSS/JS files of ours.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
]
