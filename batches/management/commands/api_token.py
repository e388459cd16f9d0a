"""API tokens from the command line: `manage.py api_token USER [--name TEXT] [--revoke [PREFIX]] [--list]`.

A new token is printed once, as the last line of stdout (`TOKEN=$(./dgx api_token artist | tail -1)`);
only its SHA-256 is stored, so a lost token is revoked and replaced, never shown again.
"""
from __future__ import annotations

from django.contrib.auth import get_user_model

from batches import cli
from batches.models import ApiToken

ALL = object()  # --revoke given without a prefix


class Command(cli.CliCommand):
    help = ("Issue an API token for USER (printed once, as the last line), list USER's tokens (--list), "
            "or revoke them (--revoke PREFIX: the tokens starting so; --revoke alone: all of them).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("user", metavar="USER", help="the Django user the token acts as")
        parser.add_argument("--name", default="", metavar="TEXT", help="what the token is for (a build script, CI...)")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--revoke", nargs="?", const=ALL, default=None, metavar="PREFIX",
                           help="revoke USER's tokens starting with PREFIX (as --list shows); alone: all of them")
        which.add_argument("--list", action="store_true", help="list USER's tokens (prefix, name, dates)")

    def handle(self, *args, user: str, name: str, revoke, list: bool, **options) -> None:
        account = get_user_model().objects.filter(username=user).first()
        if account is None:
            raise cli.UsageError(f"USER: no user named {user!r}: create one in the admin, or check the spelling")
        if name and (revoke is not None or list):
            raise cli.UsageError("--name: only when issuing a token, not with --revoke or --list")
        if list:
            self._list(account)
        elif revoke is not None:
            self._revoke(account, revoke)
        else:
            if not account.is_active:
                raise cli.UsageError(f"USER: {user!r} is inactive: its tokens would be refused; activate it first")
            if len(name) > 100:
                raise cli.UsageError(f"--name: {len(name)} characters; at most 100")
            row, token = ApiToken.issue(account, name=name)
            self.stderr.write(f"API token {row.prefix}... for {user}{f' ({name})' if name else ''}; "
                              "shown once, store it now:")
            self.stdout.write(token)

    def _list(self, account) -> None:
        rows = account.api_tokens.order_by("created_at", "id")
        if not rows:
            self.stdout.write(f"{account.get_username()} has no API tokens.")
        for row in rows:
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
            self.stdout.write(f"{row.prefix}  {state:<22} created {row.created_at:%Y-%m-%d %H:%M}  {used}  {row.name}")

    def _revoke(self, account, prefix) -> None:
        rows = account.api_tokens.filter(revoked_at__isnull=True)
        if prefix is not ALL:
            prefix = prefix.strip()
            if not prefix:
                raise cli.UsageError("--revoke: an empty PREFIX: give the token's first characters, or none for all")
            # A prefix as --list shows it (12 characters) or a longer piece of the token itself.
            rows = [r for r in rows if (r.prefix.startswith(prefix) if len(prefix) <= len(r.prefix)
                                        else prefix.startswith(r.prefix))]
            if not rows:
                raise cli.UsageError(f"--revoke: no active token of {account.get_username()} starts with "
                                     f"{prefix!r}: see --list")
        revoked = sum(row.revoke() for row in rows)
        self.stdout.write(f"Revoked {revoked} token{'s' * (revoked != 1)} of {account.get_username()}.")
