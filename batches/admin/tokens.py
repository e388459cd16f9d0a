"""API tokens in the admin: who has which, when each was last used, revoking, and issuing one.

Only a token's SHA-256 is stored, so the add form issues the token through ApiToken.issue and
shows it once, in the page's message; it cannot be shown again (revoke it and issue another).
"""
from __future__ import annotations

from django.contrib import admin, messages

from batches.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("prefix", "name", "user__username")
    ordering = ("-created_at",)
    list_select_related = ("user",)
    actions = ["revoke_tokens"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name")
        return ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("prefix", "user", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request, obj: ApiToken, form, change: bool) -> None:
        if change:
            ApiToken.objects.filter(pk=obj.pk).update(name=obj.name)  # the name is all an edit may change
            return
        row, token = ApiToken.issue(obj.user, name=obj.name)
        obj.pk, obj.prefix, obj.digest, obj.created_at = row.pk, row.prefix, row.digest, row.created_at
        obj._state.adding = False
        self.message_user(request, f"API token for {row.user}: {token} (shown this once; copy it now, "
                                   "only its hash is kept)", messages.WARNING)

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request, queryset) -> None:
        revoked = sum(row.revoke() for row in queryset)
        self.message_user(request, f"Revoked {revoked} token{'s' * (revoked != 1)}.", messages.SUCCESS)
