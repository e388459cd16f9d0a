"""Operator verbs on the rows (the worker side is covered with real processes in test_resilience)."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from batches.models import Event, Job, QueueControl, Unit
from batches.services import control
from batches.services.submission import job_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    return job_submit(owner=owner, **{"prompts": ["p"], "count": 8, "batch_size": 4, "client": None,
                                      "wake": False, **params})


def test_cancelling_a_queued_job_cancels_its_units_and_finishes_it(owner):
    job = submit(owner)
    assert control.job_cancel(job, by="me")
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.finished_at is not None
    assert set(job.units.values_list("status", flat=True)) == {Unit.Status.CANCELLED}
    assert not control.job_cancel(job)  # already finished: nothing to do


def test_cancel_all_queued_spares_running_jobs(owner):
    queued = [submit(owner), submit(owner)]
    running = submit(owner)
    running.mark_started()
    assert control.cancel_all_queued(by="me") == 2
    assert all(Job.objects.get(pk=j.pk).status == Job.Status.CANCELLED for j in queued)
    assert Job.objects.get(pk=running.pk).status == Job.Status.RUNNING
    assert control.cancel_all(by="me") == 1
    assert Job.objects.get(pk=running.pk).status == Job.Status.CANCELLED


def test_changing_priority_moves_the_pending_units_too(owner):
    job = submit(owner, priority="low")
    control.job_set_priority(job, "urgent", by="me")
    assert Job.objects.get(pk=job.pk).priority_name == "urgent"
    assert set(job.units.values_list("priority", flat=True)) == {40}
    assert Event.objects.filter(kind="job_priority", job=job).exists()


def test_requeue_makes_a_new_job_with_the_same_parameters_and_seeds(owner):
    job = submit(owner, seed=99, steps=12, cfg=6.5, negative_prompt="blurry", priority="high")
    control.job_cancel(job)
    again = control.job_requeue(job)
    assert again.pk != job.pk and again.requeued_from_id == job.pk and again.status == Job.Status.QUEUED
    for field in ("prompts", "count", "steps", "cfg", "negative_prompt", "priority", "base_seed", "batch_size"):
        assert getattr(again, field) == getattr(job, field), field
    assert list(again.units.values_list("seed", flat=True)) == list(job.units.values_list("seed", flat=True))


def test_retrying_failed_units_puts_them_back_in_the_queue(owner):
    job = submit(owner)
    unit = job.units.first()
    unit.mark_failed("boom")
    assert control.job_retry_failed(job) == 1
    unit.refresh_from_db()
    assert (unit.status, unit.attempts, unit.error) == (Unit.Status.PENDING, 0, "")


def test_pause_and_resume_are_recorded_and_published(owner):
    control.queue_pause(by="me")
    assert QueueControl.is_paused() and QueueControl.get().paused_by == "me"
    control.queue_resume(by="me")
    assert not QueueControl.is_paused()
    assert list(Event.objects.values_list("kind", flat=True)) == ["queue_paused", "queue_resumed"]


def test_priority_refuses_an_unknown_level_and_a_finished_job_with_the_reason(owner):
    job = submit(owner, priority="low")
    with pytest.raises(control.ControlError, match="unknown level 'asap': choose urgent, high, normal or low"):
        control.job_set_priority(job, "asap")
    control.job_cancel(job)
    job.refresh_from_db()
    with pytest.raises(control.ControlError, match=f"job {job.pk} already finished"):
        control.job_set_priority(job, "urgent")
    assert Job.objects.get(pk=job.pk).priority_name == "low"
    assert not Event.objects.filter(kind="job_priority").exists()
