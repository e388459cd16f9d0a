from django.conf import settings
from django.contrib import admin
from django.contrib.auth import urls as auth_urls
from django.contrib.auth import views as auth_views
from django.urls import include, path

# Resetting a password sends mail: without EMAIL_HOST the reset pages would promise a mail that
# never comes, so they exist only where mail is configured (otherwise staff set a new password).
PASSWORD_RESET = {"password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete"}
account_urls = [p for p in auth_urls.urlpatterns if settings.EMAIL_HOST or p.name not in PASSWORD_RESET]

# The admin's login page links to "admin_password_reset" when that name exists.
admin_reset = [path("admin/password_reset/", auth_views.PasswordResetView.as_view(), name="admin_password_reset")]

urlpatterns = [
    *(admin_reset if settings.EMAIL_HOST else []),
    path("admin/", admin.site.urls),
    path("accounts/", include(account_urls)),
    path("api/v1/", include("batches.http_api.urls")),  # the HTTP JSON API (token auth, no sessions)
    path("", include("batches.urls")),
]
