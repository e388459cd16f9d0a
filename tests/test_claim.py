"""Claiming units: priority, FIFO, model affinity with its bound, and no unit claimed twice."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from batches.models import Unit
from batches.services.submission import job_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user("artist", password="pw")


def submit(owner, **params):
    return job_submit(owner=owner, **{"prompts": ["p"], "count": 1, "batch_size": 1, "client": None,
                                      "wake": False, **params})


def claim(**kwargs):
    return Unit.claim_next(node="gpu-test", comfyui_url="http://127.0.0.1:8188", **kwargs)


def test_it_claims_by_priority_then_first_come_first_served(owner):
    low = submit(owner, priority="low")
    normal_1 = submit(owner, priority="normal")
    urgent = submit(owner, priority="urgent")
    normal_2 = submit(owner, priority="normal")
    high = submit(owner, priority="high")
    order = [claim().job_id for _ in range(5)]
    assert order == [urgent.pk, high.pk, normal_1.pk, normal_2.pk, low.pk]
    assert claim() is None


def test_a_claimed_unit_is_marked_with_its_node_and_attempt(owner):
    submit(owner)
    unit = claim()
    assert (unit.status, unit.node, unit.attempts) == (Unit.Status.SUBMITTED, "gpu-test", 1)
    assert unit.claimed_at and unit.heartbeat_at


def test_a_unit_already_claimed_elsewhere_is_not_claimed_again(owner):
    submit(owner, count=2)
    first = claim()
    # A second node that saw the same unit as pending loses the compare-and-set and takes the next.
    assert Unit.objects.filter(pk=first.pk, status=Unit.Status.PENDING).update(node="x") == 0
    second = Unit.claim_next(node="gpu-other", comfyui_url="http://127.0.0.1:8189")
    assert second.pk != first.pk and Unit.objects.get(pk=first.pk).node == "gpu-test"


def test_units_of_a_cancelled_job_are_never_claimed(owner):
    from batches.services.control import job_cancel

    job = submit(owner)
    job_cancel(job)
    assert claim() is None


def test_model_affinity_prefers_the_loaded_checkpoint_within_a_priority(owner):
    a1 = submit(owner, checkpoint="a.safetensors")
    b1 = submit(owner, checkpoint="b.safetensors")
    a2 = submit(owner, checkpoint="a.safetensors")
    urgent_b = submit(owner, checkpoint="b.safetensors", priority="urgent")
    picks = [claim(prefer_checkpoint="a.safetensors", max_skips=8).job_id for _ in range(4)]
    # Affinity never beats priority; inside "normal", a2 overtakes b1 because a is loaded.
    assert picks == [urgent_b.pk, a1.pk, a2.pk, b1.pk]


def test_model_affinity_passes_over_a_unit_at_most_max_skips_times(owner):
    waiting = submit(owner, checkpoint="b.safetensors")
    for _ in range(5):
        submit(owner, checkpoint="a.safetensors")
    picks = [claim(prefer_checkpoint="a.safetensors", max_skips=2).job_id for _ in range(3)]
    assert picks[2] == waiting.pk  # passed over twice, then its turn
    assert Unit.objects.get(job=waiting).passed_over == 2


def test_without_affinity_it_is_plain_fifo(owner):
    b = submit(owner, checkpoint="b.safetensors")
    submit(owner, checkpoint="a.safetensors")
    assert claim(prefer_checkpoint="a.safetensors", max_skips=0).job_id == b.pk


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_died_between_its_last_unit_and_closing_it_is_closed_by_the_next_pass(output_root):
    from batches.models import Event, Job
    from batches.services import reclaim

    owner = get_user_model().objects.create_user("left-open", password="pw")
    job = job_submit(owner=owner, prompts=["pixel art lamp"], count=2, batch_size=1, client=None, wake=False)
    assert not reclaim.jobs_left_open_exist()  # its units wait: nothing to close
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING)
    Unit.objects.filter(job=job).update(status=Unit.Status.DONE)  # the last unit recorded; then the worker died
    assert reclaim.jobs_left_open_exist()
    assert reclaim.close_jobs_left_open() == 1
    job.refresh_from_db()
    assert job.status in Job.FINISHED and job.finished_at is not None
    assert Event.objects.filter(kind="job_finished", job=job).count() == 1
    assert not reclaim.jobs_left_open_exist() and reclaim.close_jobs_left_open() == 0
