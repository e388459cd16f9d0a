"""Rows for the doors other programs use: API tokens (HTTP API, ZeroMQ) and webhook deliveries."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "dgx_"


def token_digest(token: str) -> str:
    """What is stored for a token: its SHA-256 (tokens are long random strings; no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class ApiToken(models.Model):
    """A per-user API token. Only its SHA-256 is kept; the token itself is shown once, when issued."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What the token is for (a build script, CI...).")
    prefix = models.CharField(max_length=16, help_text="The token's first characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.user}{', revoked' if self.revoked_at else ''})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def issue(cls, user, *, name: str = "") -> tuple["ApiToken", str]:
        """A new token for `user`: the row and the token in clear (shown once, never stored)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(user=user, name=name[:100], prefix=token[:12], digest=token_digest(token))
        return row, token

    @classmethod
    def find(cls, token: str) -> "ApiToken | None":
        """The active token row for a token given in clear, with its user; None when unknown or revoked."""
        if not token or len(token) > 200:
            return None
        row = cls.objects.select_related("user").filter(digest=token_digest(token), revoked_at__isnull=True).first()
        if row is None or not row.user.is_active:
            return None
        return row

    def revoke(self) -> bool:
        changed = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if changed:
            self.revoked_at = timezone.now()
        return changed == 1

    def touch(self) -> None:
        """Record use, at most once a minute (a busy script must not write a row per request)."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now


class WebhookEndpoint(models.Model):
    """A user's standing webhook: every job of theirs reports its end (and progress, if asked) here."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    progress = models.BooleanField(default=False, help_text="Also send job.progress events.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.url} ({self.owner})"


class WebhookDelivery(models.Model):
    """One event for one URL: tried until delivered or out of attempts; the admin's delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending"  # waiting for its next attempt (next_attempt_at)
        SENDING = "sending"  # claimed by a webhook worker (claimed_at); taken back if that worker died
        DELIVERED = "delivered"
        FAILED = "failed"  # out of attempts

    job = models.ForeignKey("batches.Job", null=True, blank=True, on_delete=models.CASCADE,
                            related_name="webhook_deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="deliveries")
    url = models.URLField(max_length=500)
    event = models.CharField(max_length=32, help_text="job.completed, job.partial, job.failed, job.cancelled, "
                                                      "job.progress or ping.")
    event_id = models.BigIntegerField(null=True, blank=True,
                                      help_text="The Event row it reports: one delivery per event and URL.")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_due")]
        constraints = [models.UniqueConstraint(fields=["event_id", "url"], name="webhook_once_per_event_url")]

    def __str__(self) -> str:
        return f"{self.event} -> {self.url} ({self.status})"

    # --- state changes: guarded updates, so two webhook workers never send one row at once -------
    @classmethod
    def claim_due(cls, *, now=None, stale_after: float = 60.0) -> "WebhookDelivery | None":
        """Take one row to send: a pending row whose time has come, or a row left `sending` for more
        than `stale_after` seconds by a worker that died (at-least-once: it is sent again, under
        the same delivery id, so the receiver can tell). Compare-and-set on the row's status and
        claim time: of two workers that pick the same row, one wins, the other takes the next."""
        now = now or timezone.now()
        stale = now - timedelta(seconds=stale_after)
        for _ in range(5):  # lost a race: look again
            row = (cls.objects.filter(status=cls.Status.PENDING, next_attempt_at__lte=now)
                   .order_by("next_attempt_at", "id").values("id", "status", "claimed_at").first()
                   or cls.objects.filter(status=cls.Status.SENDING, claimed_at__lt=stale)
                   .order_by("claimed_at", "id").values("id", "status", "claimed_at").first())
            if row is None:
                return None
            guard = cls.objects.filter(pk=row["id"], status=row["status"])
            guard = guard.filter(claimed_at=row["claimed_at"]) if row["claimed_at"] else guard.filter(claimed_at__isnull=True)
            if guard.update(status=cls.Status.SENDING, claimed_at=now, attempts=models.F("attempts") + 1):
                claimed = cls.objects.select_related("job", "endpoint").get(pk=row["id"])
                claimed.taken_back = row["status"] == cls.Status.SENDING
                return claimed
        return None

    def _record(self, **changes) -> bool:
        """Write an attempt's outcome, unless the row was taken back from this worker meanwhile
        (it looked dead): then the worker that took it over records the outcome, not this one."""
        changed = WebhookDelivery.objects.filter(pk=self.pk, status=self.Status.SENDING,
                                                 claimed_at=self.claimed_at).update(**changes)
        if changed:
            for key, value in changes.items():
                setattr(self, key, value)
        return changed == 1

    def delivered(self, status_code: int) -> bool:
        return self._record(status=self.Status.DELIVERED, last_status_code=status_code, last_error="",
                            delivered_at=timezone.now())

    @staticmethod
    def retry_delay(attempts: int) -> float:
        """Seconds before the next attempt after `attempts` failed ones: base * 2**(attempts-1), at most an hour."""
        base = float(getattr(settings, "WEBHOOK_RETRY_BASE", 10.0))
        return min(3600.0, base * 2 ** max(0, attempts - 1))

    def failed_attempt(self, *, error: str, status_code: int | None = None, final: bool = False) -> bool:
        """An attempt that did not get a 2xx: pending again after the back-off, or failed when out
        of attempts (or when `final`: a target that is refused will not get better by waiting)."""
        out = final or self.attempts >= int(getattr(settings, "WEBHOOK_MAX_ATTEMPTS", 8))
        changes = {"last_status_code": status_code, "last_error": error[:4000]}
        if out:
            changes["status"] = self.Status.FAILED
        else:
            changes.update(status=self.Status.PENDING,
                           next_attempt_at=timezone.now() + timedelta(seconds=self.retry_delay(self.attempts)))
        return self._record(**changes)

    def redeliver(self) -> "WebhookDelivery":
        """Queue this delivery's message again as a new row (a new delivery id and attempt series);
        this row stays as it was, so the log tells what happened to each try."""
        payload = dict(self.payload)
        payload["redelivery_of"] = self.pk
        return WebhookDelivery.objects.create(job=self.job, endpoint=self.endpoint, url=self.url, event=self.event,
                                              event_id=None, payload=payload)
